"""Deteriorated-video generator: objects whose class shows only in their texture, moving and
occluding each other over textured backgrounds, with isolated deteriorated frames.

Class c is a pattern (stripes of some orientation, checkerboard, dots, rings, ...) at a period;
each object gets one of four colour pairs at random, so colour says nothing about the class. A deteriorated
frame is motion-blurred (11-16 px along the motion, with shake), defocused (Gaussian radius
2.5-3.5), covered by occluders over the objects' centres, or darkened to 20 % with blur and
noise: the pattern (period 4 px and up), and so the class, is unreadable in that frame, while
the object's outline still shows where it is (blur sizes grow with ``period``). Deteriorated
frames come in runs of ``run_length`` frames of one kind (default: single frames); runs never
touch each other and frame 0 is always clean, so every run has readable neighbours.
Deterministic: the same seed gives the same pixels and annotations.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .corrupt import gaussian_blur, motion_blur
from .types import ArrayFrames, FrameTargets, Video, atomic_write

PATTERNS = ("hstripes", "vstripes", "checker", "diagonal", "dots", "rings")
# colour pairs shared by all classes: an object's colours say nothing about its class
PALETTE = np.array([[[235, 205, 60], [120, 70, 20]], [[70, 200, 230], [20, 40, 120]],
                    [[240, 240, 240], [40, 40, 40]], [[230, 90, 140], [70, 20, 60]]], dtype=np.float32)
KINDS = ("motion_blur", "defocus", "occlusion", "low_light")


@dataclass(frozen=True)
class SynthConfig:
    videos: int = 8
    frames: int = 32
    width: int = 256
    height: int = 192
    classes: int = 3
    max_objects: int = 3
    min_objects: int = 1  # objects per video: uniform in min_objects..max_objects
    deteriorated: float = 0.3  # target fraction of deteriorated frames (at most ~0.5: they never touch)
    object_size: tuple[float, float] = (0.28, 0.40)  # object side range, as a fraction of min(width, height)
    kinds: tuple[str, ...] = KINDS
    # chance that a video's second object is a look-alike of the first (the tracking target): same
    # shape, size and colours, another pattern (class), circling the target at 0.5-1.0 of its side,
    # so that wherever a frame hides the pattern the two are told apart only by where they were
    look_alike: float = 0.0
    # > 0: the look-alike keeps this far from the target (centre distance, in target sides) on clean
    # frames and comes in to its orbit only around runs of deteriorated frames (fully during a run,
    # 2/3 and 1/3 of the way one and two frames either side), so that the two are confused where
    # the patterns are unreadable and told apart by their patterns elsewhere; 0: always orbiting
    look_alike_far: float = 0.0
    # deteriorated frames come in runs of lo..hi consecutive frames (one kind per run), so that a
    # tracker must carry the target through several unreadable frames; (1, 1): isolated frames
    run_length: tuple[int, int] = (1, 1)
    period: int = 4  # the patterns' period in pixels for the first 6 classes (+2 per further 6)
    seed: int = 0

    def __post_init__(self):
        if not 1 <= self.classes <= 30:
            raise ValueError(f"classes must be in 1..30, got {self.classes}")
        if self.width < 32 or self.height < 32:
            raise ValueError(f"size must be at least 32x32, got {self.width}x{self.height}")
        if not 0 <= self.deteriorated <= 0.5:
            raise ValueError(f"deteriorated must be in [0, 0.5] (deteriorated frames never touch), got {self.deteriorated}")
        lo, hi = self.object_size
        if not 0.05 <= lo <= hi <= 1.0:
            raise ValueError(f"object_size must be (lo, hi) with 0.05 <= lo <= hi <= 1, got {self.object_size}")
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds}")
        if self.videos < 1 or self.frames < 1 or self.max_objects < 1:
            raise ValueError("videos, frames and max_objects must be >= 1")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"min_objects must be in 1..max_objects ({self.max_objects}), got {self.min_objects}")
        if not 0 <= self.look_alike <= 1:
            raise ValueError(f"look_alike must be a probability in [0, 1], got {self.look_alike}")
        lo, hi = self.run_length
        if not 1 <= lo <= hi:
            raise ValueError(f"run_length must be (lo, hi) with 1 <= lo <= hi, got {self.run_length}")
        if not 2 <= self.period <= 32:
            raise ValueError(f"period must be in 2..32 pixels, got {self.period}")
        if not (self.look_alike_far == 0 or 1.0 <= self.look_alike_far <= 4.0):
            raise ValueError(f"look_alike_far must be 0 (always orbiting) or in [1, 4] target sides, got {self.look_alike_far}")
        if self.look_alike and self.classes < 2:
            raise ValueError("look_alike needs classes >= 2 (a look-alike has another pattern than the target)")


def class_names(n: int, period: int = 4) -> list[str]:
    return [f"{PATTERNS[c % len(PATTERNS)]}_{_period(c, period)}px" for c in range(n)]


def _period(c: int, base: int = 4) -> int:
    return base + 2 * (c // len(PATTERNS))


def _pattern(c: int, u: np.ndarray, v: np.ndarray, base: int = 4) -> np.ndarray:
    """Binary pattern of class c at object-local coordinates u, v (pixels)."""
    kind, period = c % len(PATTERNS), _period(c, base)
    half = period / 2
    if kind == 0:
        return (v % period) < half
    if kind == 1:
        return (u % period) < half
    if kind == 2:
        return ((u // half) + (v // half)) % 2 == 0
    if kind == 3:
        return ((u + v) % period) < half
    if kind == 4:
        return ((u % period - half) ** 2 + (v % period - half) ** 2) < (period / 3) ** 2
    return (np.sqrt(u ** 2 + v ** 2) % period) < half


def _background(rng: np.random.Generator, W: int, H: int) -> np.ndarray:
    """Muted low-frequency texture with a tint and fine grain."""
    grey = rng.uniform(70, 150, size=(max(2, H // 24), max(2, W // 24), 1))
    tint = rng.uniform(-15, 15, size=(1, 1, 3))
    low = np.clip(grey + tint, 0, 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(low).resize((W, H), Image.BICUBIC)).astype(np.float32)
    return np.clip(img + rng.normal(0, 5, size=img.shape), 0, 255)


def _deteriorate(img: np.ndarray, kind: str, rng: np.random.Generator, objects, scale: float = 1.0) -> np.ndarray:
    """``scale``: blur sizes in units of the default 4-px period's (period / 4)."""
    if kind == "motion_blur":  # along the motion, plus the shake that smears patterns parallel to it
        vx, vy = objects[0]["velocity"] if objects else (1.0, 0.0)
        angle = float(np.arctan2(vy, vx)) if (vx or vy) else 0.0
        length = int(rng.integers(11, 17))
        return gaussian_blur(motion_blur(img, int(round(length * scale)), angle), 1.5 * scale)
    if kind == "defocus":
        return gaussian_blur(img, float(rng.uniform(2.5, 3.5)) * scale)
    if kind == "occlusion":
        out = img.copy()
        for ob in objects:
            x1, y1, x2, y2 = ob["box"]
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * 0.8, (y2 - y1) * 0.8
            ys, xs = slice(max(0, int(cy - h / 2)), max(0, int(cy + h / 2))), slice(max(0, int(cx - w / 2)), max(0, int(cx + w / 2)))
            out[ys, xs] = rng.uniform(90, 140, size=3)
        return out
    return gaussian_blur(img, 1.5 * scale) * 0.2 + rng.normal(0, 10, size=img.shape)  # low light: dim, soft, noisy


def synth_video(config: SynthConfig, index: int):
    """One generated video -> (Video with masks, deteriorated frame indices, their kinds)."""
    rng = np.random.default_rng([config.seed, index])
    W, H, T = config.width, config.height, config.frames
    background = _background(rng, W, H)
    n_obj = int(rng.integers(config.min_objects, config.max_objects + 1))
    objects = []
    for k in range(n_obj):
        side = rng.uniform(*config.object_size) * min(W, H)
        objects.append({
            "cls": int(rng.integers(config.classes)), "ellipse": bool(rng.integers(2)),
            "w": side * rng.uniform(0.8, 1.25), "h": side * rng.uniform(0.8, 1.25),
            "x": rng.uniform(side / 2, W - side / 2), "y": rng.uniform(side / 2, H - side / 2),
            "vx": rng.uniform(1.5, 4.0) * rng.choice([-1, 1]), "vy": rng.uniform(0.5, 2.5) * rng.choice([-1, 1]),
            "colors": PALETTE[int(rng.integers(len(PALETTE)))], "track": k + 1, "phase": rng.uniform(0, 8, size=2)})
    if config.look_alike and n_obj >= 2:
        _make_look_alike(objects, np.random.default_rng([config.seed, index, 1]), config)
    # runs of deteriorated frames that never touch, never frame 0. A run starts at an eligible
    # frame with chance p = f / (L (1 - f)) (L the mean run length), so that about a fraction f
    # of the frames is deteriorated: a cycle is (1 - p) / p eligible clean frames, a run of L and
    # the clean frame after it. Single frames (lo = hi = 1) draw exactly what they always drew.
    chosen, kinds = [], []
    lo, hi = config.run_length
    p = config.deteriorated / max(1e-9, (lo + hi) / 2 * (1 - config.deteriorated))
    t = 1
    while t < T:
        if (not chosen or chosen[-1] < t - 1) and rng.random() < p:
            kind = str(rng.choice(config.kinds))
            length = int(rng.integers(lo, hi + 1)) if hi > lo else lo
            run = list(range(t, min(t + length, T)))
            chosen += run
            kinds += [kind] * len(run)
            t = run[-1] + 1
        else:
            t += 1
    if config.look_alike_far and n_obj >= 2 and "orbit" in objects[1]:
        # how close the look-alike comes at each frame: 1 within a run, falling by 1/3 a frame away
        near = np.array([max([0.0] + [1 - abs(t - c) / 3 for c in chosen]) for t in range(T)])
        objects[1]["orbit"]["near"] = near
        objects[1]["orbit"]["far"] = config.look_alike_far * float(np.sqrt(objects[0]["w"] * objects[0]["h"]))
        _place_orbit(objects[1], objects[0], 0)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    frames, targets = [], []
    for t in range(T):
        img = background.copy()
        shapes = []
        for ob in objects:  # back to front
            u, v = xx - (ob["x"] - ob["w"] / 2), yy - (ob["y"] - ob["h"] / 2)
            if ob["ellipse"]:
                shape = ((xx - ob["x"]) / (ob["w"] / 2)) ** 2 + ((yy - ob["y"]) / (ob["h"] / 2)) ** 2 <= 1
            else:
                shape = (np.abs(xx - ob["x"]) <= ob["w"] / 2) & (np.abs(yy - ob["y"]) <= ob["h"] / 2)
            pat = _pattern(ob["cls"], u + ob["phase"][0], v + ob["phase"][1], config.period)
            color = np.where(pat[..., None], ob["colors"][0], ob["colors"][1])
            img[shape] = color[shape]
            shapes.append(shape)
        masks, boxes, labels, tracks, vis, cover, cut = [], [], [], [], [], [], []
        info = []
        for k, ob in enumerate(objects):
            visible = shapes[k].copy()
            for front in shapes[k + 1:]:
                visible &= ~front
            full = ((ob["w"] * ob["h"] * (np.pi / 4 if ob["ellipse"] else 1.0)))
            frac = float(visible.sum()) / full
            x1, y1 = max(0.0, ob["x"] - ob["w"] / 2), max(0.0, ob["y"] - ob["h"] / 2)
            x2, y2 = min(W - 1.0, ob["x"] + ob["w"] / 2), min(H - 1.0, ob["y"] + ob["h"] / 2)
            present = visible.any() and x2 > x1 and y2 > y1
            rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            masks.append(rle)
            boxes.append([x1, y1, x2, y2])
            labels.append(ob["cls"] + 1)
            tracks.append(ob["track"])
            vis.append(bool(present))
            cover.append(int(np.clip(np.floor(frac * 8 + 1e-6), 0, 8)) if present else 0)
            cut.append(int(ob["x"] - ob["w"] / 2 < 0 or ob["y"] - ob["h"] / 2 < 0 or
                           ob["x"] + ob["w"] / 2 > W - 1 or ob["y"] + ob["h"] / 2 > H - 1))
            info.append({"box": [x1, y1, x2, y2], "velocity": (ob["vx"], ob["vy"])})
        if t in chosen:
            img = _deteriorate(img, kinds[chosen.index(t)], rng, [i for i, s in zip(info, vis) if s], config.period / 4)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
        occluded = [t in chosen and kinds[chosen.index(t)] == "occlusion"] * len(objects)
        targets.append(FrameTargets(boxes, labels, tracks, masks=masks, visible=vis,
                                    extra={"cover": np.array(cover), "cut_by_image": np.array(cut),
                                           "occluded": np.array(occluded, dtype=bool)}))
        for ob in objects:  # move, bounce off the borders (objects may leave the frame in part)
            if "orbit" in ob:
                continue
            ob["x"] += ob["vx"]
            ob["y"] += ob["vy"]
            if not 0 <= ob["x"] <= W:
                ob["vx"] *= -1
            if not 0 <= ob["y"] <= H:
                ob["vy"] *= -1
        for ob in objects:  # a look-alike circles the target, which has moved
            if "orbit" in ob:
                _place_orbit(ob, objects[0], t + 1)
    name = f"synth_{config.seed:04d}_{index:05d}"
    video = Video(name, ArrayFrames(frames), W, H, targets, frame_names=[f"{t:06d}" for t in range(T)])
    return video, chosen, kinds


def _make_look_alike(objects: list[dict], rng: np.random.Generator, config: SynthConfig) -> None:
    """Turn ``objects[1]`` into a look-alike of ``objects[0]`` (drawn from ``rng``, a generator of
    its own, so videos without one keep their pixels): the target's shape, size and colours,
    another class, and an orbit around the target (radius 0.5-1.0 of the target's side, turning
    0.12-0.3 rad a frame either way, the radius breathing by +-0.15 side)."""
    target, other = objects[0], objects[1]
    cls = int(rng.integers(config.classes - 1))
    other.update(cls=cls + (cls >= target["cls"]), ellipse=target["ellipse"], w=target["w"], h=target["h"],
                 colors=target["colors"])
    side = float(np.sqrt(target["w"] * target["h"]))
    other["orbit"] = {"radius": side * rng.uniform(0.5, 1.0), "breath": side * 0.15, "angle": rng.uniform(0, 2 * np.pi),
                      "turn": rng.uniform(0.12, 0.3) * rng.choice([-1, 1]), "pace": rng.uniform(0.2, 0.5)}
    _place_orbit(other, target, 0)
    other["vx"], other["vy"] = target["vx"], target["vy"]


def _place_orbit(ob: dict, target: dict, t: int) -> None:
    o = ob["orbit"]
    angle = o["angle"] + o["turn"] * t
    radius = o["radius"] + o["breath"] * np.sin(o["pace"] * t)
    if "near" in o:  # look_alike_far: out at "far" on clean frames, in at its orbit around deteriorated runs
        near = float(o["near"][min(t, len(o["near"]) - 1)])
        radius = near * radius + (1 - near) * o["far"]
    x, y = target["x"] + radius * np.cos(angle), target["y"] + radius * np.sin(angle)
    ob["vx"], ob["vy"] = x - ob["x"], y - ob["y"]
    ob["x"], ob["y"] = x, y


def visible_only(video: Video) -> Video:
    """The same video with objects absent from a frame removed from that frame's targets."""
    targets = []
    for tg in video.targets:
        keep = np.flatnonzero(tg.visible)
        targets.append(FrameTargets(tg.boxes[keep], tg.labels[keep], tg.track_ids[keep],
                                    masks=[tg.masks[i] for i in keep] if tg.masks is not None else None,
                                    extra={k: v[keep] for k, v in tg.extra.items()}))
    return Video(video.name, video.frames, video.width, video.height, targets, video.frame_names, dict(video.meta))


def write_synth(out: str | Path, fmt: str, config: SynthConfig, split: str = "val", progress: bool = True) -> dict:
    """Generate ``config.videos`` videos and write them in a benchmark layout, plus the sidecar
    ``deteriorated.json`` listing the deteriorated frames (per video; for VID also as global
    frame indices, for YouTube-VIS also by video id)."""
    from ..progress import track
    from .got10k import write_got10k
    from .vid import VID_WNIDS, write_vid
    from .ytvis import write_ytvis

    if fmt not in ("vid", "ytvis", "got10k"):
        raise ValueError(f"format must be vid, ytvis or got10k, got {fmt!r}")
    out = Path(out)
    videos, sidecar = [], {"format": fmt, "split": split, "config": asdict(config), "videos": {}}
    steps = range(config.videos)
    for i in (track(steps, "generating videos") if progress else steps):
        video, chosen, kinds = synth_video(config, i)
        videos.append(video)
        sidecar["videos"][video.name] = {"frames": chosen, "kinds": kinds}
    total = sum(len(v) for v in videos)
    sidecar["fraction"] = sum(len(v["frames"]) for v in sidecar["videos"].values()) / total
    names = class_names(config.classes, config.period)
    if fmt == "vid":
        write_vid(out, split, [visible_only(v) for v in videos], progress=progress)
        index, globals_ = 1, []
        for v in videos:
            globals_ += [index + t for t in sidecar["videos"][v.name]["frames"]]
            index += len(v)
        sidecar["vid_frame_indices"] = globals_
        sidecar["class_names"] = {VID_WNIDS[c]: names[c] for c in range(config.classes)}
    elif fmt == "ytvis":
        categories = [{"id": c + 1, "name": n, "supercategory": "pattern"} for c, n in enumerate(names)]
        write_ytvis(out / "instances.json", videos, categories)
        sidecar["video_ids"] = {v.name: i for i, v in enumerate(videos, 1)}
    else:
        write_got10k(out, split, videos, progress=progress)
    atomic_write(out / "deteriorated.json", json.dumps(sidecar, indent=1))
    return sidecar
