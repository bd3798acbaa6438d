"""Read a config's split, generating it first when the config asks for generated data."""
from __future__ import annotations

import json
from pathlib import Path

from .types import Video, differences


def _present(root: Path, fmt: str, split: str) -> bool:
    if fmt == "vid":
        return (root / "ImageSets" / f"VID_{split}_frames.txt").is_file()
    if fmt == "ytvis":
        return (root / split / "instances.json").is_file()
    return (root / split / "list.txt").is_file()


def read_split(data, split: str) -> list[Video]:
    """Videos of ``split`` for a ``DataConfig``: ImageNet VID (``format: vid``), GOT-10k
    (``format: got10k``: ``root/<split>/``) or YouTube-VIS (``format: ytvis``:
    ``root/<split>/instances.json`` with ``JPEGImages/`` beside it). With ``synth`` set and the split missing, the split is generated into
    ``root`` first (SynthConfig fields, plus ``<split>_videos`` / ``<split>_seed``), with its
    sidecar ``deteriorated_<split>.json``."""
    root = Path(data.root)
    if data.synth is not None:
        from dataclasses import asdict

        from .synth import SynthConfig, write_synth
        splits = (f"{data.train_split}_", f"{data.val_split}_")
        synth = {k: v for k, v in data.synth.items() if not k.startswith(splits)}
        synth["videos"] = data.synth.get(f"{split}_videos", synth.get("videos", 8))
        synth["seed"] = data.synth.get(f"{split}_seed", 0 if split == data.train_split else 1)
        config = SynthConfig(**synth)
        settings = json.loads(json.dumps({"format": data.format, **asdict(config)}))  # as stored
        record = root / f"synth_{split}.json"
        if not _present(root, data.format, split):
            out = root / split if data.format == "ytvis" else root  # YouTube-VIS has no split in its layout
            write_synth(out, data.format, config, split=split)
            (out / "deteriorated.json").rename(sidecar_path(data, split))
            from .types import atomic_write
            atomic_write(record, json.dumps(settings, indent=1))
        elif record.is_file():  # generated before: by these settings?
            made = json.loads(record.read_text())
            defaults = json.loads(json.dumps(asdict(SynthConfig())))  # a field added since keeps its default there
            diff = differences({k: made.get(k, defaults.get(k)) for k in settings}, settings)
            if diff:
                raise ValueError(f"{root}: split {split!r} was generated with other settings ({'; '.join(diff[:4])}); "
                                 "remove it to generate it again, or set data.root elsewhere")
    if data.format == "vid":
        from .vid import read_vid
        return read_vid(root, split, progress=False)
    if data.format == "ytvis":
        from .ytvis import read_ytvis
        return read_ytvis(root / split / "instances.json")[0]
    from .got10k import read_got10k
    return read_got10k(root, split, progress=False)


def sidecar_path(data, split: str) -> Path:
    """Where generated data keeps the deteriorated-frames sidecar of ``split``."""
    return Path(data.root) / f"deteriorated_{split}.json"


def read_sidecar(path: str | Path, key: str | None = None):
    """A deteriorated-frames sidecar: {video name: frame numbers}; with ``key="vid"`` the set of
    VID frame indices, with ``key="ytvis"`` {YouTube-VIS video id: frame numbers}."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data.get("videos"), dict):
        raise ValueError(f"{path}: not a deteriorated-frames sidecar (no 'videos' mapping)")
    if key == "vid":
        if "vid_frame_indices" not in data:
            raise ValueError(f"{path}: no 'vid_frame_indices' (the sidecar of a VID-format dataset is needed)")
        return set(data["vid_frame_indices"])
    if key == "ytvis":
        ids = data.get("video_ids")
        if ids is None:
            raise ValueError(f"{path}: no 'video_ids' (the sidecar of a YouTube-VIS-format dataset is needed)")
        return {ids[name]: v["frames"] for name, v in data["videos"].items()}
    return {name: [int(t) for t in v["frames"]] for name, v in data["videos"].items()}


def deteriorated_frames(data, split: str) -> dict[str, list[int]]:
    """Deteriorated frame numbers per video name of ``split``, from its sidecar (written with
    generated data)."""
    path = sidecar_path(data, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no deteriorated-frames sidecar for split {split!r} (it is written "
                                "with generated data)")
    return read_sidecar(path)
