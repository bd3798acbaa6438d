"""The detection task for the engine: model, data, loss, video inference and evaluation."""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.sampling import SupportConfig, check_test_support
from ..core.streaming import SupportStream
from ..data.clips import ClipDataset
from ..data.splits import deteriorated_frames, read_split
from ..data.types import Video
from ..engine.config import Config
from ..engine.tasks import Section, Task, build_stpn, normalization_of
from ..engine.trainer import unwrap
from .model import STPNDetector
from .released import is_mmdet_detector, load_detector_checkpoint
from ..core.weights import load_backbone_weights, read_state_dict


@dataclass
class RCNNSection(Section):
    """What every R-CNN task on the STPN backbone sets (detection, segmentation)."""

    num_classes: int = 30
    fpn_channels: int = 256
    box_head_dim: int = 1024
    anchor_scale: int = 8
    min_size: list = field(default_factory=lambda: [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800])
    max_size: int = 1333
    test_min_size: int = 600
    test_max_size: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    deteriorated_repeat: int = 1  # key frames listed in deteriorated_<train_split>.json appear this often per epoch

    def problems(self):
        return [(k, m) for ok, k, m in (
            (self.deteriorated_repeat >= 1, "deteriorated_repeat", "must be >= 1"),
            (self.num_classes >= 1, "num_classes", "must be >= 1")) if not ok]


@dataclass
class DetectionSection(RCNNSection):
    """``detection:`` in a config."""

    conventions: str = "torchvision"  # torchvision | mmdet (the released model's resize, anchors, RoIAlign, ...)
    det_image_set: str | None = None  # training: add the ImageNet DET images of ROOT/ImageSets/<this>.txt (e.g. DET_train_30classes)

    def problems(self):
        bad = [] if self.conventions in ("torchvision", "mmdet") else [("conventions", "must be torchvision or mmdet")]
        return bad + super().problems()


def build_detector(cfg: Config) -> STPNDetector:
    return build_rcnn(cfg, STPNDetector, conventions=cfg.detection.conventions)


def build_rcnn(cfg: Config, cls, **extra):
    """An R-CNN of class ``cls`` (``STPNDetector`` or a subclass) from the config's model and task
    section, with ``model.weights`` loaded (a backbone checkpoint, or an mmdetection detector)."""
    m, o = cfg.model, cfg.section
    stpn = build_stpn(cfg)
    mean, std = normalization_of(cfg)
    det = cls(stpn, o.num_classes, image_mean=list(mean), image_std=list(std), fpn_channels=o.fpn_channels,
              box_head_dim=o.box_head_dim, anchor_scale=o.anchor_scale, min_size=tuple(o.min_size),
              max_size=o.max_size, rpn_batch_size_per_image=o.rpn_batch_size_per_image,
              box_batch_size_per_image=o.box_batch_size_per_image, **extra)
    if m.weights:
        sd = read_state_dict(m.weights)  # read once: a COCO detector checkpoint is hundreds of MB
        if is_mmdet_detector(sd):  # e.g. the COCO Mask R-CNN Swin-T the paper starts from
            load_detector_checkpoint(det, m.weights, strict=False, state_dict=sd)
        else:
            load_backbone_weights(stpn.backbone, m.weights, state_dict=sd)
    return det


def _image(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(frame, copy=True)).permute(2, 0, 1).float().div_(255)


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
        from ..data.vid import read_det
        videos += read_det(cfg.data.root, cfg.detection.det_image_set, progress=False)
    return videos


def train_clips(cfg: Config, videos: list[Video], cls=DetectionClips) -> ClipDataset:
    """The training items of ``videos`` (the config's training split) as ``cls``: key frames with
    their supports, deteriorated key frames repeated when the section's ``deteriorated_repeat`` > 1."""
    d = cfg.data
    support = SupportConfig(d.train_policy, d.train_num_support, 1, d.train_max_offset)
    clips = cls(videos, support, key_stride=d.key_stride, seed=cfg.run.seed)
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

    def load(self, weights, config=None, overrides=()):
        from .commands import load_detector
        return load_detector(weights, config, overrides)

    # the hooks below live in the task package's ``commands`` and ``demo`` modules, imported on
    # use; a task built on this one (segmentation) sets ``package`` to its own
    package = "stpn.detection"

    def _part(self, module: str, name: str):
        import importlib
        return getattr(importlib.import_module(f"{self.package}.{module}"), name)

    def evaluate(self, model, cfg: Config, out, mode=None, console=None) -> dict:
        return self._part("commands", "evaluate_run")(model, cfg, out, mode, console)

    def print_metrics(self, metrics: dict, cfg: Config, console=None) -> None:
        self._part("commands", "print_metrics")(metrics, cfg, console)

    # the demo: hooks of stpn.engine.demo.run_paired_demo
    def demo_config(self, out, quick, prompting, seed=0):
        return self._part("demo", "demo_config")(out, quick, prompting, seed)

    def demo_pretrain_config(self, out, quick, seed=0):
        return self._part("demo", "pretrain_config")(out, quick, seed)

    demo_metrics = ("ap50_all", "ap50_deteriorated")

    def demo_row(self, metrics: dict) -> dict:
        return {"ap50_all": metrics["ap50_all"], "ap50_deteriorated": metrics.get("ap50_deteriorated"),
                "ms_per_frame": metrics["ms_per_frame"], "inference_mode": metrics["mode"]}

    def demo_table(self, report: dict, console) -> None:
        self._part("demo", "demo_table")(report, console)

    robustness_metric = "AP50"

    def robustness_score(self, model, cfg, videos, support_videos=None) -> float:
        from ..evaluation.vid import evaluate_vid
        preds = detect_videos(model, cfg, videos, support_videos=support_videos)
        o = cfg.section
        names = self._part("commands", "class_names")(cfg)
        return evaluate_vid(videos, detections_table(videos, preds), class_names=names,
                            num_classes=o.num_classes)["ap50"]

    def demo_figures(self, report, results, configs, out):
        return self._part("demo", "demo_figures")(report, configs, out)


def detect_videos(det: STPNDetector, cfg: Config, videos, mode: str | None = None,
                  support_videos: list[Video] | None = None) -> list[list[dict]]:
    """``predict_video`` over ``videos`` at the config's test settings (``mode`` overrides the
    policy), on the detector's device; ``support_videos`` as ``support_video`` per video."""
    d, o = cfg.data, cfg.section
    device = next(det.parameters()).device.type
    return [list(predict_video(det, v, mode or d.test_policy, d.test_num_support, d.test_stride, d.test_refresh_every,
                               device, o.test_min_size, o.test_max_size, support_video=sv))
            for v, sv in zip(videos, support_videos or itertools.repeat(None))]


def predict_video(det: STPNDetector, video: Video, mode: str = "global", num_support: int = 14, stride: int = 1,
                  refresh_every: int = 1, device: str = "cpu", min_size: int | None = None, max_size: int | None = None,
                  convert=None, support_video: Video | None = None):
    """Detections of every frame of a video, in order (a generator; the settings are checked
    before it is returned): dicts of numpy boxes (xyxy, inclusive input pixels), labels
    (1-based), scores. Support frames per ``mode``: ``global`` (prompts once per video),
    ``local`` (K/2 before and after, stride S), ``causal`` (stream, past only). ``convert(output,
    H, W)`` turns the model's output of a frame into what is yielded (default:
    ``inclusive_detections``; a task on this detector adds its own outputs, e.g. masks).
    ``support_video``: take the support frames from this video instead (the same frames, e.g.
    uncorrupted, to corrupt the key frames only); every mode then embeds them through the
    support transform."""
    if mode not in ("global", "local", "causal"):
        raise ValueError(f"inference mode must be global, local or causal, got {mode!r}")
    if det.stpn.prompting:
        check_test_support(mode, num_support, stride, refresh_every)
    stream = SupportStream(mode, num_support, stride, refresh_every, len(video)) if det.stpn.prompting else None
    frames = (video.frames[i] for i in range(len(video)))
    if support_video is not None and len(support_video) != len(video):
        raise ValueError(f"support video {support_video.name} has {len(support_video)} frames, "
                         f"video {video.name} {len(video)}")
    source = video if support_video is None else support_video
    return _at_test_sizes(det, min_size, max_size,
                          lambda: _detect(det, frames, stream, device, source.frames.__getitem__, convert=convert,
                                          separate_support=support_video is not None))


@torch.no_grad()
def _at_test_sizes(det: STPNDetector, min_size: int | None, max_size: int | None, detections):
    det.eval()
    with _test_sizes(det, min_size, max_size):
        yield from detections()


@contextmanager
def _test_sizes(det: STPNDetector, min_size: int | None, max_size: int | None):
    """Resize to the test sizes (when given) while detecting; restore the training sizes after."""
    saved = det.transform.min_size, det.transform.max_size
    if min_size:
        det.transform.min_size, det.transform.max_size = (min_size,), max_size or det.transform.max_size
    try:
        yield
    finally:
        det.transform.min_size, det.transform.max_size = saved


def inclusive_detections(d: dict, height: int, width: int) -> dict:
    """Detector output (exclusive corners, in [0, W] x [0, H]) -> numpy boxes with inclusive pixel
    coordinates inside the image (x1 <= x2 <= W - 1, y1 <= y2 <= H - 1: a box narrower than a
    pixel keeps one pixel), labels, scores."""
    boxes = d["boxes"].float().cpu().numpy().copy()
    boxes[:, 2:] = np.maximum(boxes[:, 2:] - 1, boxes[:, :2])
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height - 1)
    return {"boxes": boxes, "labels": d["labels"].cpu().numpy(), "scores": d["scores"].float().cpu().numpy()}


def predict_stream(det: STPNDetector, frames, num_support: int = 4, stride: int = 1, refresh_every: int = 8,
                   device: str = "cpu", min_size: int | None = None, max_size: int | None = None, convert=None):
    """Online detection over any iterable of (H, W, 3) uint8 frames (a live stream): causal
    supports for STPN, single frames for the baseline. A generator of one dict per frame
    (``convert`` as in ``predict_video``)."""
    if det.stpn.prompting:
        check_test_support("causal", num_support, stride, refresh_every)
    stream = SupportStream("causal", num_support, stride, refresh_every) if det.stpn.prompting else None
    return _at_test_sizes(det, min_size, max_size, lambda: _detect(det, frames, stream, device, convert=convert))


def _detect(det: STPNDetector, frames, stream: SupportStream | None, device, frame_at=None, first: int = 0,
            convert=None, separate_support: bool = False):
    """Detections of ``frames`` (frame numbers from ``first``) in order, prompts from ``stream``.
    The support frames are the unprompted backbone's input of the key frame (causal: the current
    frame) or, offline, frame ``frame_at(i)`` through the key frame's transform."""
    convert = convert or inclusive_detections
    for t, frame in enumerate(frames, start=first):
        img = _image(frame).to(device)
        if stream is None:
            yield convert(det([img])[0], *img.shape[-2:])
            continue
        images, _ = det.transform([img])
        if stream.policy == "causal" and not separate_support:
            image_of = lambda i: images.tensors  # noqa: E731 - the current frame
        else:
            image_of = lambda i: det.transform_support(  # noqa: E731
                [_image(frame_at(i)).to(device)[None]], images.image_sizes, images.tensors.shape[-2:])[:, 0]
        maps = det.stpn.backbone(images.tensors, stream.prompts_at(det.stpn, t, image_of))
        yield convert(det.detect_maps(images, maps, tuple(img.shape[-2:])), *img.shape[-2:])


def detections_table(videos: list[Video], predictions: list[list[dict]]) -> np.ndarray:
    """Rows ``frame_index class score x1 y1 x2 y2`` for the devkit file."""
    rows = []
    for video, preds in zip(videos, predictions):
        indices = video.meta.get("frame_indices") or list(range(1, len(video) + 1))
        for g, p in zip(indices, preds):
            for box, label, score in zip(p["boxes"], p["labels"], p["scores"]):
                rows.append([g, label, score, *box])
    return np.array(rows, dtype=np.float64).reshape(-1, 7)
