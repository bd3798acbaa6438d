"""An exported segmenter on ONNX Runtime (``stpn export`` of a segmentation run): the graphs give
each frame's instances (masks and association embeddings included); the tracks are made in
Python by the run's tracker (``segment_video(OnnxSegmenter(...), video, cfg)``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..detection.onnx import OnnxDetector


@dataclass
class OnnxSegmenter(OnnxDetector):
    """An exported ``STPNSegmenter`` on ONNX Runtime for frames of the exported size;
    ``predict_video`` yields per frame what ``convert`` makes of the graph's outputs (set it to
    the run's ``stpn.segmentation.inference.convert_of(cfg)``; ``segment_video`` does)."""

    task = "segmenter"
    outputs = ("boxes", "labels", "scores", "masks", "embeddings")
    converter = None

    def convert(self, output: dict, height: int, width: int) -> dict:
        if self.converter is None:
            from .inference import instances
            return instances(output, height, width)
        return self.converter(output, height, width)
