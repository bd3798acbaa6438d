"""Detectors at work on videos and streams: support frames per policy, test sizes, detections as
numpy arrays and as the devkit table."""
from __future__ import annotations

import itertools
from contextlib import contextmanager

import numpy as np
import torch

from ..core.sampling import check_test_support
from ..core.streaming import SupportStream
from ..data.types import Video
from ..engine.config import Config
from .model import STPNDetector


def _image(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(frame, copy=True)).permute(2, 0, 1).float().div_(255)


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


def predict_source(det: STPNDetector, cfg: Config, video: Video | None, frames, mode: str, settings, convert=None):
    """(frames, predictions) for a command on a video file, a frame folder or a live stream
    (``video`` None: a webcam): causal prompts from a stream of the frames (which the caller still
    gets to draw on), or ``mode`` over the whole video. ``settings``: (K, S, refresh)."""
    if video is None and mode != "causal":
        raise ValueError(f"a webcam is a live stream: use --mode causal (not {mode})")
    device = next(det.parameters()).device.type
    K, stride, refresh = settings
    sizes = (cfg.section.test_min_size, cfg.section.test_max_size)
    if mode == "causal" or not det.stpn.prompting:
        frames, mine = itertools.tee(frames)
        return frames, predict_stream(det, mine, K, stride, refresh, device, *sizes, convert=convert)
    return frames, predict_video(det, video, mode, K, stride, refresh, device, *sizes, convert=convert)
