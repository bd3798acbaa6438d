"""The detection task for the engine: its config section, training data and loss, and the hooks
that build, load, evaluate and demo a detector (``stpn.engine.tasks.Task``)."""
from __future__ import annotations

import torch

from .._moved import moved_names
from ..core.sampling import SupportConfig
from ..data.clips import ClipDataset
from ..data.corrupt import TrainCorruption
from ..data.splits import deteriorated_frames, read_split
from ..data.types import Video
from ..engine.config import Config
from ..engine.tasks import Task
from ..engine.trainer import unwrap
from ..evaluation.vid import evaluate_vid
from . import build, inference  # noqa: F401 - homes of the moved names below
from .build import DetectionSection, build_detector, class_names, load_detector
from .evaluate import evaluate_run, print_metrics
from .inference import detect_videos, detections_table
from .model import STPNDetector


def _target(tg, inclusive: bool = True) -> dict:
    """FrameTargets -> the detector's target: boxes with exclusive corners (``inclusive``: the
    annotation's are inclusive pixel coordinates, as VID's; YouTube-VIS boxes are exclusive)."""
    boxes = torch.as_tensor(tg.boxes, dtype=torch.float32).reshape(-1, 4).clone()
    if inclusive:
        boxes[:, 2:] += 1
    return {"boxes": boxes, "labels": torch.as_tensor(tg.labels, dtype=torch.int64)}


class DetectionClips(ClipDataset):
    """ClipDataset whose items collate into detector input."""

    @staticmethod
    def collate(samples) -> dict:
        return {"images": [s.frame.float().div(255) for s in samples],
                "support": [s.support.float().div(255) for s in samples],
                "offsets": torch.tensor([[i - s.index for i in s.support_index] for s in samples]),
                "targets": [_target(s.targets) for s in samples]}


def train_videos(cfg: Config) -> list[Video]:
    """The training split, plus the ImageNet DET images of ``data.det_image_set`` as one-frame videos."""
    videos = read_split(cfg.data, cfg.data.train_split)
    if cfg.detection.det_image_set:
        from ..data.vid import read_det  # ImageNet DET: only when the config asks for it
        videos += read_det(cfg.data.root, cfg.detection.det_image_set, progress=False)
    return videos


def train_clips(cfg: Config, videos: list[Video], cls=DetectionClips) -> ClipDataset:
    """The training items of ``videos`` (the config's training split) as ``cls``: key frames with
    their supports, deteriorated key frames repeated when the section's ``deteriorated_repeat`` > 1."""
    d = cfg.data
    support = SupportConfig(d.train_policy, d.train_num_support, 1, d.train_max_offset)
    clips = cls(videos, support, key_stride=d.key_stride, seed=cfg.run.seed,
                corruption=TrainCorruption.from_dict(d.train_corrupt))
    if cfg.section.deteriorated_repeat > 1:
        clips.oversample(deteriorated_frames(d, d.train_split), cfg.section.deteriorated_repeat)
    return clips


class DetectionTask(Task):
    """Video object detection (ImageNet VID layout): Faster R-CNN + FPN on the STPN backbone."""

    name, what, data_formats, Section = "detection", "detector", ("vid",), DetectionSection

    def build_model(self, cfg: Config) -> STPNDetector:
        return build_detector(cfg)

    def train_dataset(self, cfg: Config) -> DetectionClips:
        return train_clips(cfg, train_videos(cfg))

    def loss(self, model, batch: dict, device: str) -> dict:
        images = [x.to(device) for x in batch["images"]]
        targets = [{k: v.to(device) for k, v in t.items()} for t in batch["targets"]]
        prompting = unwrap(model).stpn.prompting
        support = [s.to(device) for s in batch["support"]] if prompting else None
        offsets = batch["offsets"].to(device) if prompting else None
        return model(images, targets, support, offsets)

    # the hooks that are plain functions of this package (signatures as in stpn.engine.tasks.Task)
    load = staticmethod(load_detector)
    evaluate = staticmethod(evaluate_run)
    print_metrics = staticmethod(print_metrics)



    robustness_metric = "AP50"

    def robustness_score(self, model, cfg, videos, support_videos=None) -> float:
        preds = detect_videos(model, cfg, videos, support_videos=support_videos)
        o = cfg.section
        names = class_names(cfg)
        return evaluate_vid(videos, detections_table(videos, preds), class_names=names,
                            num_classes=o.num_classes)["ap50"]


__getattr__ = moved_names(__name__, {"RCNNSection": build, "build_detector": build, "build_rcnn": build, "predict_video": inference, "predict_stream": inference, "inclusive_detections": inference, "_image": inference})  # old imports, for one release
