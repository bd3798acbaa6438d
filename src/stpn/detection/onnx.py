"""An exported detector on ONNX Runtime (``stpn export`` of a detection run)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.onnx import OnnxSTPN, _prompt_feeds, _run, _session, read_manifest
from ..core.streaming import SupportStream
from .inference import _image, inclusive_detections


@dataclass
class OnnxDetector:
    """An exported ``STPNDetector`` on ONNX Runtime for frames of the exported size."""

    folder: Path
    providers: list | None = None

    task = "detector"  # the manifest's task and the graph's name
    outputs = ("boxes", "labels", "scores")

    def __post_init__(self):
        self.folder = Path(self.folder)
        m = self.manifest = read_manifest(self.folder)
        if m["task"] != self.task:
            raise ValueError(f"{self.folder}: an exported {m['task']}, not a {self.task}")
        self.stpn = OnnxSTPN(self.folder, m, self.providers)
        self.detector = _session(self.folder / f"{self.task}.onnx", self.providers)

    def convert(self, output: dict, height: int, width: int) -> dict:
        """One frame's graph outputs -> what ``predict_video`` yields."""
        return inclusive_detections(output, height, width)

    def predict_video(self, video, mode: str = "global", num_support: int | None = None, stride: int = 1,
                      refresh_every: int = 1, convert=None):
        """Detections of every frame (a generator of the dicts ``predict_video`` yields; ``convert``
        (outputs, H, W) -> that dict replaces ``self.convert``, as in PyTorch's), support
        frames per ``mode`` as in ``stpn.detection.inference.predict_video``. The embedding graph
        prepares every support frame as the offline modes do (``transform_support``); in causal
        mode PyTorch embeds the key frame's own transformed tensor instead, which differs where
        the detector resizes (bilinear either way, sizes rounded differently)."""
        K = num_support or (self.stpn.num_support if self.stpn.prompting else 1)
        stream = SupportStream(mode, K, stride, refresh_every, len(video)) if self.stpn.prompting else None
        H, W = self.manifest["size"]
        for t in range(len(video)):
            frame = _image(video.frames[t])
            if tuple(frame.shape[-2:]) != (H, W):
                raise ValueError(f"frame {t} is {frame.shape[-1]}x{frame.shape[-2]}; the detector graph was "
                                 f"exported for {W}x{H} frames (stpn export --size)")
            prompts = None
            if stream is not None:
                prompts = stream.prompts_at(self.stpn, t, lambda i: _image(video.frames[i])[None])
            outputs = _run(self.detector, {"frame": frame, **_prompt_feeds(self.manifest, prompts)})
            yield (convert or self.convert)(dict(zip(self.outputs, outputs)), H, W)
