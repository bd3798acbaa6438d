"""An exported segmenter on ONNX Runtime (``stpn export`` of a segmentation run): the graphs give
each frame's instances (masks and association embeddings included); the tracks are made in
Python by the run's tracker (``segment_video(OnnxSegmenter(...), video, cfg)``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..detection.onnx import OnnxDetector


@dataclass
class OnnxSegmenter(OnnxDetector):
    """An exported ``STPNSegmenter`` on ONNX Runtime for frames of the exported size;
    ``predict_video`` yields per frame the instances of the graph's outputs (``convert``: the
    run's ``stpn.segmentation.inference.convert_of(cfg)``, which ``segment_video`` passes)."""

    task = "segmenter"
    outputs = ("boxes", "labels", "scores", "masks", "embeddings")

    def convert(self, output: dict, height: int, width: int) -> dict:
        from .inference import instances
        return instances(output, height, width)
