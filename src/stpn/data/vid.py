"""ImageNet VID layout: read, write, and the devkit detection file.

    ROOT/Data/VID/<split>/<video>/<frame>.JPEG
    ROOT/Annotations/VID/<split>/<video>/<frame>.xml      PASCAL VOC XML with trackid
    ROOT/ImageSets/VID_<split>_frames.txt                 "<split>/<video>/<frame> <index>"

Boxes keep the XML's inclusive pixel coordinates (xmin, ymin, xmax, ymax), so widths are
``xmax - xmin + 1`` as in the devkit. Labels are 1..30 in ``VID_WNIDS`` order.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.dom import minidom

import numpy as np

from ..progress import track
from .types import AnnotationError, FrameTargets, ImageFiles, Video, atomic_write, require_file, save_jpeg

VID_WNIDS = (
    "n02691156", "n02419796", "n02131653", "n02834778", "n01503061", "n02924116", "n02958343",
    "n02402425", "n02084071", "n02121808", "n02503517", "n02118333", "n02510455", "n02342885",
    "n02374451", "n02129165", "n01674464", "n02484322", "n03790512", "n02324045", "n02509815",
    "n02411705", "n01726692", "n02355227", "n02129604", "n04468005", "n01662784", "n04530566",
    "n02062744", "n02391049")
VID_NAMES = (
    "airplane", "antelope", "bear", "bicycle", "bird", "bus", "car", "cattle", "dog",
    "domestic_cat", "elephant", "fox", "giant_panda", "hamster", "horse", "lion", "lizard",
    "monkey", "motorcycle", "rabbit", "red_panda", "sheep", "snake", "squirrel", "tiger", "train",
    "turtle", "watercraft", "whale", "zebra")


def _int(node: ET.Element, tag: str, path: Path) -> int:
    child = node.find(tag)
    if child is None or child.text is None:
        raise AnnotationError(f"{path}: missing <{tag}>")
    try:
        return int(float(child.text))
    except ValueError:
        raise AnnotationError(f"{path}: <{tag}> must be a number, got {child.text!r}") from None


def parse_vid_xml(path: Path, wnids=VID_WNIDS, skip_invalid: bool = False, drop_other_classes: bool = False):
    """Parse one annotation file -> (width, height, FrameTargets, number of skipped objects).
    ``drop_other_classes`` leaves out (and counts) objects whose class is not in ``wnids``
    (ImageNet DET images hold 200 classes, VID's 30 among them)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise AnnotationError(f"{path}: malformed XML: {err}") from None
    size = root.find("size")
    if size is None:
        raise AnnotationError(f"{path}: missing <size>")
    width, height = _int(size, "width", path), _int(size, "height", path)
    boxes, labels, tracks, occluded, skipped = [], [], [], [], 0
    for i, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        bnd = obj.find("bndbox")
        if bnd is None:
            raise AnnotationError(f"{path}: object {i} has no <bndbox>")
        box = [_int(bnd, t, path) for t in ("xmin", "ymin", "xmax", "ymax")]
        problem = None
        if name not in wnids and drop_other_classes:
            skipped += 1
            continue
        if name not in wnids:
            problem = f"unknown class {name!r} (expected one of the {len(wnids)} VID WordNet ids)"
        elif box[2] < box[0] or box[3] < box[1]:
            problem = f"box {box} has zero area (xmax < xmin or ymax < ymin)"
        elif box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
            problem = f"box {box} lies outside the {width}x{height} image"
        if problem:
            if skip_invalid:
                skipped += 1
                continue
            raise AnnotationError(f"{path}: object {i}: {problem}")
        boxes.append(box)
        labels.append(wnids.index(name) + 1)
        tracks.append(int(obj.findtext("trackid") or i))
        occluded.append(int(obj.findtext("occluded") or 0))
    targets = FrameTargets(np.array(boxes, dtype=np.float32).reshape(-1, 4), labels, tracks,
                           extra={"occluded": np.array(occluded, dtype=bool)})
    return width, height, targets, skipped


def _frame_list(root: Path, split: str) -> list[tuple[str, str, int]]:
    """(video, frame, global index) for every frame of the split, in index order."""
    sets = root / "ImageSets"
    for path in (sets / f"VID_{split}_frames.txt", sets / "VID" / f"{split}.txt"):
        if path.is_file():
            out = []
            for n, line in enumerate(path.read_text().splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) == 2:  # "<split>/<video>/<frame> <index>" or "<video>/<frame> <index>"
                    name = parts[0].removeprefix(f"{split}/")
                    video, _, frame = name.rpartition("/")
                    if not video or not parts[1].isdigit():
                        raise AnnotationError(f"{path}:{n}: expected '<video>/<frame> <index>', got {line!r}")
                    out.append((video, frame, int(parts[1])))
                elif len(parts) == 4:  # "<split>/<video> 1 <frame id> <frames>" (FGFA/MEGA lists)
                    video = parts[0].removeprefix(f"{split}/")
                    out.append((video, f"{int(parts[2]):06d}", n))
                else:
                    raise AnnotationError(f"{path}:{n}: expected '<video>/<frame> <index>', got {line!r}")
            return out
    data = root / "Data" / "VID" / split
    if not data.is_dir():
        raise FileNotFoundError(f"no ImageNet VID split {split!r} under {root}: expected {data} "
                                f"or {sets / f'VID_{split}_frames.txt'}")
    out, index = [], 1
    videos = sorted({p.parent for p in data.rglob("*.JPEG")})
    for video_dir in videos:
        for frame in sorted(video_dir.glob("*.JPEG")):
            out.append((str(video_dir.relative_to(data)), frame.stem, index))
            index += 1
    return out


def read_vid(root: str | Path, split: str = "val", wnids=VID_WNIDS, skip_invalid: bool = False,
             progress: bool = True) -> list[Video]:
    """Read an ImageNet VID split. Frames are decoded lazily.

    Every listed frame needs its annotation XML; ``skip_invalid`` skips bad objects (unknown
    class, zero-area or out-of-image boxes) instead of raising, counting them in
    ``video.meta['skipped_objects']``.
    """
    root = Path(root)
    frames = _frame_list(root, split)
    by_video: dict[str, list[tuple[str, int]]] = {}
    for video, frame, index in frames:
        by_video.setdefault(video, []).append((frame, index))
    videos = []
    items = by_video.items()
    for name, entries in (track(items, f"reading VID {split}") if progress else items):
        targets, skipped, size = [], 0, None
        for frame, _ in entries:
            xml = root / "Annotations" / "VID" / split / name / f"{frame}.xml"
            if not xml.is_file():
                raise FileNotFoundError(f"annotation of frame {name}/{frame} is missing: {xml}")
            w, h, tg, s = parse_vid_xml(xml, wnids, skip_invalid)
            size = size or (w, h)
            targets.append(tg)
            skipped += s
        paths = [root / "Data" / "VID" / split / name / f"{f}.JPEG" for f, _ in entries]
        videos.append(Video(name, ImageFiles(paths), size[0], size[1], targets,
                            frame_names=[f for f, _ in entries],
                            meta={"frame_indices": [i for _, i in entries], "skipped_objects": skipped,
                                  "categories": list(wnids)}))
    return videos


def read_det(root: str | Path, image_set: str = "DET_train_30classes", wnids=VID_WNIDS,
             skip_invalid: bool = False, progress: bool = True) -> list[Video]:
    """ImageNet DET still images, each a one-frame video (its supports are copies of itself), as
    the released VID models train on them:

        ROOT/ImageSets/<image_set>.txt      "<split>/<folder>/<image> <index>" per line
        ROOT/Data/DET/<split>/<folder>/<image>.JPEG
        ROOT/Annotations/DET/<split>/<folder>/<image>.xml

    Objects of classes outside ``wnids`` (the other DET classes) are left out and counted in
    ``video.meta['skipped_objects']``, with bad objects when ``skip_invalid``."""
    root = Path(root)
    listing = root / "ImageSets" / f"{image_set}.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"no ImageNet DET image list {image_set!r}: expected {listing}")
    entries = []
    for n, line in enumerate(listing.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit() or "/" not in parts[0]:
            raise AnnotationError(f"{listing}:{n}: expected '<split>/<folder>/<image> <index>', got {line!r}")
        entries.append(parts[0])
    videos = []
    for name in (track(entries, f"reading DET {image_set}") if progress else entries):
        xml = root / "Annotations" / "DET" / f"{name}.xml"
        if not xml.is_file():
            raise FileNotFoundError(f"annotation of DET image {name} is missing: {xml}")
        w, h, tg, skipped = parse_vid_xml(xml, wnids, skip_invalid, drop_other_classes=True)
        image = root / "Data" / "DET" / f"{name}.JPEG"
        videos.append(Video(f"DET/{name}", ImageFiles([image]), w, h, [tg], frame_names=[name.rpartition("/")[2]],
                            meta={"skipped_objects": skipped, "categories": list(wnids)}))
    return videos


def _xml(video: str, frame: str, width: int, height: int, targets: FrameTargets, wnids) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = video
    ET.SubElement(root, "filename").text = frame
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "ILSVRC_2015"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    occluded = targets.extra.get("occluded", np.zeros(len(targets), dtype=bool))
    for box, label, tid, occ in zip(targets.boxes, targets.labels, targets.track_ids, occluded):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "trackid").text = str(int(tid))
        ET.SubElement(obj, "name").text = wnids[int(label) - 1]
        bnd = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmax", "xmin", "ymax", "ymin"), (box[2], box[0], box[3], box[1])):
            ET.SubElement(bnd, tag).text = str(int(round(float(value))))
        ET.SubElement(obj, "occluded").text = str(int(occ))
        ET.SubElement(obj, "generated").text = "0"
    return minidom.parseString(ET.tostring(root)).toprettyxml(indent="\t")


def write_vid(root: str | Path, split: str, videos: list[Video], wnids=VID_WNIDS, write_frames: bool = True,
              progress: bool = True) -> None:
    """Write videos in the ImageNet VID layout (JPEG frames, XML, the frame list)."""
    root = Path(root)
    lines, index = [], 1
    for video in (track(videos, f"writing VID {split}") if progress else videos):
        names = video.frame_names or [f"{t:06d}" for t in range(len(video))]
        for t, frame in enumerate(names):
            if write_frames:
                save_jpeg(root / "Data" / "VID" / split / video.name / f"{frame}.JPEG", video.frames[t])
            targets = video.targets[t] if video.targets else FrameTargets.empty()
            atomic_write(root / "Annotations" / "VID" / split / video.name / f"{frame}.xml",
                         _xml(video.name, frame, video.width, video.height, targets, wnids))
            lines.append(f"{split}/{video.name}/{frame} {index}")
            index += 1
    atomic_write(root / "ImageSets" / f"VID_{split}_frames.txt", "\n".join(lines) + "\n")


def read_vid_detections(path: str | Path, num_classes: int = 30) -> np.ndarray:
    """Read a devkit detection file -> (n, 7) float64: frame index, class, score, x1, y1, x2, y2."""
    path = require_file(path, "a devkit detection file (lines '<frame> <class> <score> <x1> <y1> <x2> <y2>')")
    text = path.read_text()
    rows = [line.split() for line in text.splitlines()]
    for n, parts in enumerate(rows, 1):  # the column count of every line, before any number is read
        if parts and len(parts) != 7:
            raise AnnotationError(f"{path}:{n}: expected 7 columns '<frame> <class> <score> <x1> <y1> <x2> <y2>', "
                                  f"got {len(parts)}: {text.splitlines()[n - 1]!r}")
    try:
        dets = np.array([parts for parts in rows if parts], dtype=np.float64).reshape(-1, 7)
    except ValueError:
        for n, parts in enumerate(rows, 1):
            try:
                [float(v) for v in parts]
            except ValueError:
                raise AnnotationError(f"{path}:{n}: not a number in {' '.join(parts)!r}") from None
        raise
    check_vid_detections(dets, lambda row: f"{path}:{_line_of(text, row)}", num_classes)
    return dets


def check_vid_detections(dets: np.ndarray, where, num_classes: int = 30) -> None:
    """Refuse rows a score cannot be trusted on: non-finite values, fractional frame indices or
    classes, classes outside 1..num_classes, inverted boxes (x2 < x1 or y2 < y1). ``where(row)``
    names a 0-based row in the error (a file and line, or a row of an array)."""
    checks = [
        (~np.isfinite(dets).all(1), "has a value that is not a finite number (NaN or inf)"),
        (dets[:, 0] != np.round(dets[:, 0]), "has a fractional frame index"),
        ((dets[:, 1] < 1) | (dets[:, 1] > num_classes) | (dets[:, 1] != np.round(dets[:, 1])),
         f"has a class that is not in 1..{num_classes}"),
        ((dets[:, 5] < dets[:, 3]) | (dets[:, 6] < dets[:, 4]), "has an inverted box (x2 < x1 or y2 < y1)"),
    ]
    for bad, message in checks:
        rows = np.flatnonzero(bad)
        if len(rows):
            values = " ".join(f"{v:g}" for v in dets[rows[0]])
            raise AnnotationError(f"{where(int(rows[0]))}: detection '{values}' {message}"
                                  + (f" ({len(rows)} such rows)" if len(rows) > 1 else ""))


def _line_of(text: str, row: int) -> int:
    """1-based line number of the row-th non-empty line."""
    count = -1
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            count += 1
            if count == row:
                return n
    return row + 1


def write_vid_detections(path: str | Path, dets: np.ndarray) -> None:
    """Write (n, 7) detections as a devkit file, one box per line."""
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 7)
    lines = [f"{int(d[0])} {int(d[1])} {d[2]:.6f} {d[3]:.2f} {d[4]:.2f} {d[5]:.2f} {d[6]:.2f}" for d in dets]
    atomic_write(path, "\n".join(lines) + ("\n" if lines else ""))
