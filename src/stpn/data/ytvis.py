"""YouTube-VIS (2019 / 2021) layout: read, write, and the results file the server takes.

    instances.json: {"videos": [{id, width, height, length, file_names}],
                     "annotations": [{id, video_id, category_id, iscrowd, segmentations, bboxes, areas}],
                     "categories": [{id, name}]}
    one annotation per instance track; per-frame lists hold null where the instance is absent.
    results.json: [{video_id, category_id, score, segmentations: [RLE or null] * length}]
Masks are kept as compressed COCO RLE; polygons and uncompressed RLE are converted on reading.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from .types import AnnotationError, FrameTargets, ImageFiles, Video, atomic_write, save_jpeg


def to_rle(segmentation, height: int, width: int, where: str) -> dict:
    """Polygon list, uncompressed or compressed RLE -> compressed RLE with ``counts`` as str."""
    try:
        if isinstance(segmentation, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
            rle = dict(segmentation)
        else:
            raise TypeError
    except (TypeError, ValueError, IndexError):
        raise AnnotationError(f"{where}: segmentation must be a polygon list or an RLE dict with 'size' and "
                              f"'counts', got {type(segmentation).__name__}") from None
    if list(rle["size"]) != [height, width]:
        raise AnnotationError(f"{where}: mask size {list(rle['size'])} differs from the video's [{height}, {width}]")
    if isinstance(rle["counts"], bytes):
        try:
            rle["counts"] = rle["counts"].decode("ascii")
        except UnicodeDecodeError:
            raise AnnotationError(f"{where}: RLE counts are not an ASCII string") from None
    if not isinstance(rle["counts"], str):
        raise AnnotationError(f"{where}: RLE counts must be a string, got {type(rle['counts']).__name__}")
    runs = rle_runs(rle["counts"], where)
    if (runs < 0).any() or runs.sum() != height * width:
        raise AnnotationError(f"{where}: RLE counts decode to {len(runs)} runs covering {int(runs.sum())} pixels "
                              f"(negative runs: {int((runs < 0).sum())}); a {height}x{width} mask has "
                              f"{height * width}: corrupt mask encoding")
    return rle


def rle_runs(counts: str, where: str) -> np.ndarray:
    """The run lengths of a COCO compressed RLE string (pycocotools' ``rleFrString``, vectorised):
    6 bits per character from '0' (48); 5 data bits, bit 0x20 continues the number, bit 0x10 of
    its last character is the sign; from the fourth run on, each is a delta to the run two before.
    pycocotools decodes any string without complaint, so a corrupt one must be caught here."""
    try:
        b = np.frombuffer(counts.encode("ascii"), np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError:
        raise AnnotationError(f"{where}: RLE counts hold characters outside the encoding") from None
    if len(b) == 0:
        return np.zeros(0, np.int64)
    if ((b < 0) | (b > 63)).any() or b[-1] & 0x20:
        raise AnnotationError(f"{where}: RLE counts hold characters outside the encoding or end mid-number")
    end = (b & 0x20) == 0  # the last character of each number
    word = np.concatenate([[0], np.cumsum(end)[:-1]])  # number index of each character
    starts = np.flatnonzero(np.concatenate([[True], end[:-1]]))
    k = np.arange(len(b)) - starts[word]  # 5-bit group index inside its number
    if k.max() > 11:
        raise AnnotationError(f"{where}: RLE counts hold a number too long to be a run length")
    values = np.zeros(int(end.sum()), np.int64)
    np.add.at(values, word, (b & 0x1F) << (5 * k))
    negative = (b[end] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * (k[end][negative] + 1))  # sign-extend
    runs = values.copy()  # from the fourth on, deltas: runs[i] = values[i] + runs[i - 2]
    runs[1::2] = values[1::2].cumsum()
    runs[2::2] = values[2::2].cumsum()
    return runs


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: malformed JSON: {err}") from None


def _require(obj: dict, keys, where: str) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        raise AnnotationError(f"{where}: missing key(s) {missing}")


def check_track_ids(track: dict, where: str, video_ids, category_ids, videos_are: str = "in 'videos'") -> None:
    """A track (annotation or result) names a known video and category, or a clear error."""
    if track["video_id"] not in video_ids:
        raise AnnotationError(f"{where}: video_id {track['video_id']} is not {videos_are}")
    if track["category_id"] not in category_ids:
        raise AnnotationError(f"{where}: unknown category_id {track['category_id']}")


def read_ytvis(json_path: str | Path, frames_root: str | Path | None = None) -> tuple[list[Video], list[dict]]:
    """Read instances.json -> (videos with per-frame targets, categories; each video's
    ``meta['categories']`` holds them too, as VID videos hold theirs). Frames are read from
    ``frames_root / file_names[i]`` (default: ``JPEGImages`` beside the JSON) on access."""
    json_path = Path(json_path)
    data = _load_json(json_path)
    for key in ("videos", "annotations", "categories"):
        if key not in data:
            raise AnnotationError(f"{json_path}: missing top-level key {key!r}")
    frames_root = Path(frames_root) if frames_root else json_path.parent / "JPEGImages"
    categories = data["categories"]
    cat_ids = {c["id"] for c in categories}
    videos, by_id = [], {}
    for i, v in enumerate(data["videos"]):
        _require(v, ("id", "width", "height", "length", "file_names"), f"{json_path}: videos[{i}]")
        if isinstance(v["length"], bool) or not isinstance(v["length"], int) or v["length"] < 1:
            raise AnnotationError(f"{json_path}: video {v['id']} has length {v['length']!r}: a video needs at least one frame")
        if len(v["file_names"]) != v["length"]:
            raise AnnotationError(f"{json_path}: video {v['id']} has length {v['length']} but "
                                  f"{len(v['file_names'])} file_names")
        name = str(Path(v["file_names"][0]).parent) if v["file_names"] else str(v["id"])
        video = Video(name, ImageFiles([frames_root / f for f in v["file_names"]]), v["width"], v["height"],
                      None, frame_names=[Path(f).stem for f in v["file_names"]],
                      meta={"id": v["id"], "file_names": v["file_names"], "categories": categories})
        by_id[v["id"]] = (video, [[] for _ in range(v["length"])])
        videos.append(video)
    for i, ann in enumerate(data["annotations"]):
        where = f"{json_path}: annotations[{i}] (id {ann.get('id')})"
        _require(ann, ("video_id", "category_id", "segmentations"), where)
        check_track_ids(ann, where, by_id, cat_ids)
        video, per_frame = by_id[ann["video_id"]]
        segs = ann["segmentations"]
        if len(segs) != len(per_frame):
            raise AnnotationError(f"{where}: {len(segs)} segmentations for a video of {len(per_frame)} frames")
        bboxes = ann.get("bboxes") or [None] * len(segs)
        for t, seg in enumerate(segs):
            if seg is None:
                continue
            rle = to_rle(seg, video.height, video.width, f"{where}, frame {t}")
            box = bboxes[t] if bboxes[t] is not None else mask_utils.toBbox(rle).tolist()
            per_frame[t].append((box, ann["category_id"], ann.get("id", i + 1), rle, ann.get("iscrowd", 0)))
    for video, per_frame in by_id.values():
        video.targets = []
        for objs in per_frame:
            boxes = [[x, y, x + w, y + h] for (x, y, w, h), *_ in objs]
            video.targets.append(FrameTargets(np.array(boxes, dtype=np.float32).reshape(-1, 4),
                                              [o[1] for o in objs], [o[2] for o in objs], masks=[o[3] for o in objs],
                                              extra={"iscrowd": np.array([o[4] for o in objs], dtype=bool)}))
    return videos, categories


def write_ytvis(json_path: str | Path, videos: list[Video], categories: list[dict], write_frames: bool = True) -> None:
    """Write videos (targets with masks) as instances.json, frames under JPEGImages/ beside it."""
    json_path = Path(json_path)
    out_videos, annotations = [], []
    for vid_id, video in enumerate(videos, 1):
        names = video.frame_names or [f"{t:05d}" for t in range(len(video))]
        file_names = [f"{video.name}/{n}.jpg" for n in names]
        if write_frames:
            for t, f in enumerate(file_names):
                save_jpeg(json_path.parent / "JPEGImages" / f, video.frames[t])
        out_videos.append({"id": vid_id, "width": video.width, "height": video.height, "length": len(video),
                           "file_names": file_names})
        tracks: dict[int, dict] = {}
        for t, tg in enumerate(video.targets):
            if tg.masks is None:
                raise ValueError(f"video {video.name} frame {t}: YouTube-VIS needs masks")
            for j, tid in enumerate(tg.track_ids):
                tr = tracks.setdefault(int(tid), {"category_id": int(tg.labels[j]), "segmentations": [None] * len(video),
                                                  "bboxes": [None] * len(video), "areas": [None] * len(video)})
                if not tg.visible[j]:
                    continue
                rle = to_rle(tg.masks[j], video.height, video.width, f"video {video.name} frame {t}")
                tr["segmentations"][t] = rle
                tr["bboxes"][t] = [float(v) for v in mask_utils.toBbox(rle)]
                tr["areas"][t] = float(mask_utils.area(rle))
        for tid, tr in sorted(tracks.items()):
            annotations.append({"id": len(annotations) + 1, "video_id": vid_id, "iscrowd": 0, "height": video.height,
                                "width": video.width, "length": 1, **tr})
    atomic_write(json_path, json.dumps({"videos": out_videos, "annotations": annotations, "categories": categories}))


def write_ytvis_results(path: str | Path, results: list[dict], zip_path: str | Path | None = None) -> None:
    """Write results.json (and optionally the zip with results.json inside that the server takes)."""
    for i, r in enumerate(results):
        _require(r, ("video_id", "category_id", "score", "segmentations"), f"results[{i}]")
    text = json.dumps(results)
    atomic_write(path, text)
    if zip_path is not None:
        zip_path = Path(zip_path)
        tmp = zip_path.with_name(f".{zip_path.name}.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("results.json", text)
        tmp.replace(zip_path)


def split_ytvis(json_path: str | Path, out: str | Path, val_fraction: float = 0.1, seed: int = 0,
                frames_root: str | Path | None = None) -> dict:
    """Split a YouTube-VIS training set by video into ``out/train`` and ``out/val`` (each an
    instances.json with ``JPEGImages`` beside it, a link to the frames), as the layout ``stpn``
    reads (``data.format: ytvis``). The official valid ground truth is withheld, so local
    validation comes from the training videos. Deterministic (``seed``), disjoint, every video on
    one side; ``out/split.json`` records which. Returns that record."""
    import math
    import random

    json_path = Path(json_path)
    data = _load_json(json_path)
    for key in ("videos", "annotations", "categories"):
        if key not in data:
            raise AnnotationError(f"{json_path}: missing top-level key {key!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    frames_root = Path(frames_root) if frames_root else json_path.parent / "JPEGImages"
    if not frames_root.is_dir():
        raise FileNotFoundError(f"frame folder not found: {frames_root} (give it with --frames)")
    ids = sorted(v["id"] for v in data["videos"])
    if len(ids) < 2:
        raise ValueError(f"{json_path}: {len(ids)} video(s); a split needs at least 2")
    order = ids.copy()
    random.Random(seed).shuffle(order)
    val = set(order[:max(1, math.floor(val_fraction * len(ids) + 0.5))])
    record = {"source": str(json_path), "seed": seed, "val_fraction": val_fraction,
              "train": [i for i in ids if i not in val], "val": sorted(val)}
    out = Path(out)
    for split in ("train", "val"):
        keep = set(record[split])
        part = {**{k: v for k, v in data.items() if k not in ("videos", "annotations")},
                "videos": [v for v in data["videos"] if v["id"] in keep],
                "annotations": [a for a in data["annotations"] if a["video_id"] in keep]}
        (out / split).mkdir(parents=True, exist_ok=True)
        atomic_write(out / split / "instances.json", json.dumps(part))
        link = out / split / "JPEGImages"
        if link.is_symlink() or link.exists():
            if link.resolve() != frames_root.resolve():
                raise FileExistsError(f"{link} exists and is not a link to {frames_root}")
        else:
            link.symlink_to(frames_root.resolve(), target_is_directory=True)
    atomic_write(out / "split.json", json.dumps(record, indent=1))
    return record
