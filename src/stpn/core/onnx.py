"""STPN's support half on ONNX Runtime (graphs written by ``stpn.export``): reading an export
folder's manifest, opening its graphs, embedding supports and predicting prompts. The task
packages build their ONNX models on this (``stpn.tracking.onnx``, ``stpn.detection.onnx``);
onnxruntime is imported only when a graph is opened (the ``export`` extra)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


# runtime ----------------------------------------------------------------------------------------
def _session(path: Path, providers=None):
    import onnxruntime as ort
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such graph (export the model with `stpn export` first)")
    try:
        return ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime's errors (InvalidProtobuf, Fail, ...) share no base class
        raise ValueError(f"{path}: not a readable ONNX graph ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); export it again") from None


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "export.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; {folder} is not a folder written by `stpn export`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: malformed JSON ({err}); export the model again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "stpn-onnx/1":
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{path}: format {found!r}, expected 'stpn-onnx/1'")
    missing = [k for k in ("task", "prompting", "graphs") if k not in manifest]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; export the model again")
    return manifest


def _run(session, feeds: dict) -> list[torch.Tensor]:
    return [torch.from_numpy(np.asarray(a)) for a in session.run(None, {k: v.detach().cpu().numpy()
                                                                        for k, v in feeds.items()})]


class OnnxSTPN:
    """The support half of STPN on ONNX Runtime, with the interface ``SupportStream`` calls
    (``encode_support``, ``predict_prompts``, ``support_stages``, ``prompting``)."""

    def __init__(self, folder: str | Path, manifest: dict | None = None, providers=None):
        folder = Path(folder)
        self.manifest = manifest or read_manifest(folder)
        self.prompting = self.manifest["prompting"]
        support = self.manifest.get("support")
        if self.prompting:
            self.support_stages = support["support_stages"]
            self.num_support = support["num_support"]
            self.embed = _session(folder / "embed.onnx", providers)
            self.predictor = _session(folder / "predictor.onnx", providers)

    def encode_support(self, frames: torch.Tensor):
        """frames (B, K, 3, H, W) -> ({stage: (B, K, n, d)}, {stage: grid})."""
        B, K = frames.shape[:2]
        out = _run(self.embed, {"frames": frames.flatten(0, 1)})
        tokens = {s: t.reshape(B, K, *t.shape[1:]) for s, t in zip(self.support_stages, out)}
        grids = {s: tuple(self.manifest["support"]["grids"][str(s)]) for s in self.support_stages}
        return tokens, grids

    def predict_prompts(self, tokens: dict, grids=None, offsets: torch.Tensor | None = None,
                        boxes: torch.Tensor | None = None):
        """``boxes`` (B, K, 4): the supports' boxes, for a predictor exported with them (a
        tracker's target supports)."""
        out = self.predict_flat(tokens, offsets, boxes)
        return out[0] if self.manifest["support"]["prompt_depth"] == "shallow" else out

    def predict_flat(self, tokens: dict, offsets: torch.Tensor | None = None,
                     boxes: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every output of the predictor graph, in its order."""
        K = next(iter(tokens.values())).shape[1]
        if K != self.num_support:
            raise ValueError(f"the predictor graph was exported for K={self.num_support} support frames, got {K}")
        feeds = {f"tokens_{s}": tokens[s] for s in self.support_stages}
        if self.manifest["support"].get("boxes"):
            if boxes is None:
                raise ValueError("this predictor graph embeds the supports' boxes: give boxes (B, K, 4)")
            feeds["boxes"] = boxes.float()
        if self.manifest["support"]["offsets"]:  # the decoder, a tracker's box ages: 0 where unknown, as in PyTorch
            B = next(iter(tokens.values())).shape[0]
            feeds["offsets"] = torch.zeros(B, K, dtype=torch.long) if offsets is None else offsets.long()
        return _run(self.predictor, feeds)


# graphs -----------------------------------------------------------------------------------------
def _flat_prompts(prompts) -> tuple:
    return (prompts,) if isinstance(prompts, torch.Tensor) else tuple(prompts)


def _nested_prompts(stpn, flat):
    return flat[0] if stpn.prompt_depth == "shallow" else list(flat)


def _prompt_feeds(manifest: dict, prompts) -> dict:
    if prompts is None:
        return {}
    return dict(zip(manifest["support"]["prompts"], _flat_prompts(prompts)))
