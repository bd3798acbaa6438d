"""The segmentation task for the engine: clips with mask targets, the loss (the detector's with
masks), and the hooks that build, load, evaluate and demo a segmenter (``stpn.engine.tasks.Task``)."""
from __future__ import annotations

import numpy as np
import torch
from pycocotools import mask as mask_utils

from ..data.clips import ClipDataset
from ..data.splits import read_split
from ..detection.task import DetectionTask, _target, train_clips
from ..engine.config import Config
from ..evaluation.ytvis import evaluate_ytvis
from . import demo
from .build import SegmentationSection, build_segmenter, load_segmenter
from .evaluate import evaluate_run, print_metrics, results_entry
from .inference import segment_video
from .model import STPNSegmenter


class SegmentationClips(ClipDataset):
    """ClipDataset whose items collate into segmenter input (targets with masks)."""

    @staticmethod
    def collate(samples) -> dict:
        targets = []
        for s in samples:
            tg = _target(s.targets, inclusive=False)  # YouTube-VIS boxes are x, y, x + w, y + h
            H, W = s.frame.shape[-2:]
            if s.targets.masks is None:
                raise ValueError(f"video {s.video} frame {s.index}: segmentation needs masks, the annotation has none")
            masks = [mask_utils.decode(m) for m in s.targets.masks]
            for k, m in enumerate(masks):
                if m.shape != (H, W):
                    raise ValueError(f"video {s.video} frame {s.index}: mask {k} is {m.shape[1]}x{m.shape[0]}, "
                                     f"the frame {W}x{H}")
            tg["masks"] = torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, H, W), dtype=torch.uint8)
            targets.append(tg)
        return {"images": [s.frame.float().div(255) for s in samples],
                "support": [s.support.float().div(255) for s in samples],
                "offsets": torch.tensor([[i - s.index for i in s.support_index] for s in samples]),
                "targets": targets}


class SegmentationTask(DetectionTask):
    """Video instance segmentation (YouTube-VIS layout): Mask R-CNN + FPN on the STPN backbone,
    online association of the instances into tracks. Its loss is the detector's plus the masks'
    (the detector's ``loss`` with the mask targets); its other hooks are its own."""

    name, what, data_formats, Section = "segmentation", "segmenter", ("ytvis",), SegmentationSection
    robustness_metric = "mask AP50"

    def robustness_score(self, model, cfg, videos, support_videos=None) -> float:
        entry = results_entry
        device = next(model.parameters()).device.type
        results = []
        for video, sv in zip(videos, support_videos or [None] * len(videos)):
            results += [entry(r) for r in segment_video(model, video, cfg, None, device, support_video=sv)]
        categories = videos[0].meta["categories"] if videos else []
        return evaluate_ytvis(videos, categories, results)["ap50"]

    def build_model(self, cfg: Config) -> STPNSegmenter:
        return build_segmenter(cfg)

    def train_dataset(self, cfg: Config) -> SegmentationClips:
        return train_clips(cfg, read_split(cfg.data, cfg.data.train_split), SegmentationClips)

    def load(self, weights, config=None, overrides=()):
        return load_segmenter(weights, config, overrides)

    def evaluate(self, model, cfg: Config, out, mode=None, console=None) -> dict:
        return evaluate_run(model, cfg, out, mode, console)

    def print_metrics(self, metrics: dict, cfg: Config, console=None) -> None:
        print_metrics(metrics, cfg, console)

    def demo_config(self, out, quick, prompting, seed=0):
        return demo.demo_config(out, quick, prompting, seed)

    def demo_pretrain_config(self, out, quick, seed=0):
        return demo.pretrain_config(out, quick, seed)

    def demo_table(self, report: dict, console) -> None:
        demo.demo_table(report, console)

    def demo_figures(self, report, results, configs, out):
        return demo.demo_figures(report, configs, out)

    demo_metrics = ("ap_all", "ap50_all", "ap_deteriorated", "ap50_deteriorated")

    def demo_row(self, metrics: dict) -> dict:
        return {"ap_all": metrics["ap_all"], "ap50_all": metrics["ap50_all"],
                "ap_deteriorated": metrics.get("ap_deteriorated"), "ap50_deteriorated": metrics.get("ap50_deteriorated"),
                "ms_per_frame": metrics["ms_per_frame"], "inference_mode": metrics["mode"]}


_MOVED = {"SegmentationSection": "build", "build_segmenter": "build", "segment_video": "inference",
          "convert_of": "inference", "new_tracks": "inference", "instances": "inference", "encode": "inference",
          "VideoTracks": "inference", "mask_nms": "inference"}


def __getattr__(name: str):
    """Names that moved out of this module resolve for one release, with a FutureWarning."""
    if name in _MOVED:
        import warnings

        from . import build, inference
        module = {"build": build, "inference": inference}[_MOVED[name]]
        warnings.warn(f"stpn.segmentation.task.{name} moved to {module.__name__}.{name}", FutureWarning, stacklevel=2)
        return getattr(module, name)
    raise AttributeError(f"module 'stpn.segmentation.task' has no attribute {name!r}")
