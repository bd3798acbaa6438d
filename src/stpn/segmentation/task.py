"""The segmentation task for the engine: clips with mask targets, the loss (the detector's with
masks), and the hooks that build, load, evaluate and demo a segmenter (``stpn.engine.tasks.Task``)."""
from __future__ import annotations

import random

import numpy as np
import torch
from pycocotools import mask as mask_utils

from .._moved import moved_names
from ..data.clips import ClipDataset
from ..data.splits import read_split
from ..detection.task import DetectionTask, _target, train_clips
from ..engine.config import Config
from ..evaluation.ytvis import evaluate_ytvis
from . import build, inference  # noqa: F401 - homes of the moved names below
from .build import SegmentationSection, build_segmenter, load_segmenter
from .evaluate import evaluate_run, print_metrics, results_entry
from .inference import segment_video
from .model import STPNSegmenter


class SegmentationClips(ClipDataset):
    """ClipDataset whose items collate into segmenter input (targets with masks and track ids)."""

    @staticmethod
    def collate(samples) -> dict:
        targets = []
        for s in samples:
            tg = _target(s.targets, inclusive=False)  # YouTube-VIS boxes are x, y, x + w, y + h
            tg["track_ids"] = torch.as_tensor(s.targets.track_ids, dtype=torch.int64)
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


class PairedSegmentationClips(SegmentationClips):
    """Frame pairs of one video for the quasi-dense association head: item i is key frame ``t``
    (as ``SegmentationClips``) and a reference frame ``t'`` drawn uniformly from the frames within
    ``ref_range`` of ``t`` (not ``t`` itself; ``t`` in a one-frame video), each with its own
    supports; reproducible from (seed, epoch, i). ``collate`` lays the pairs out one after the
    other (``batch_size`` counts pairs, two images each) and gives both frames of a pair the
    same target ``group``."""

    def __init__(self, *args, ref_range: int = 3, **kwargs):
        super().__init__(*args, **kwargs)
        if ref_range < 1:
            raise ValueError(f"ref_range must be >= 1 frame, got {ref_range}")
        self.ref_range = ref_range

    def __getitem__(self, i: int):
        v, t = self.items[i]
        rng = random.Random(hash((self.seed, self.epoch, i)))
        key = self.clip(v, t, rng)
        near = [u for u in range(t - self.ref_range, t + self.ref_range + 1) if 0 <= u < len(self.videos[v]) and u != t]
        return key, self.clip(v, rng.choice(near) if near else t, rng)

    @staticmethod
    def collate(pairs) -> dict:
        batch = SegmentationClips.collate([s for pair in pairs for s in pair])
        for j, tg in enumerate(batch["targets"]):
            tg["group"] = torch.tensor(j // 2)
        return batch


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
        """Key frames with supports; frame pairs (``PairedSegmentationClips``) when the segmenter
        trains the quasi-dense association head."""
        o = cfg.segmentation
        if o.association == "quasi_dense":
            from functools import partial
            cls = partial(PairedSegmentationClips, ref_range=o.ref_range)
        else:
            cls = SegmentationClips
        return train_clips(cfg, read_split(cfg.data, cfg.data.train_split), cls)

    load = staticmethod(load_segmenter)
    evaluate = staticmethod(evaluate_run)
    print_metrics = staticmethod(print_metrics)




__getattr__ = moved_names(__name__, {"SegmentationSection": build, "build_segmenter": build, "segment_video": inference, "convert_of": inference, "new_tracks": inference, "instances": inference, "encode": inference, "VideoTracks": inference, "mask_nms": inference})  # old imports, for one release
