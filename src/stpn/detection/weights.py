"""Backbone weights from local files in timm, original Swin or mmdetection layouts.

Files are read safely: safetensors, or ``torch.load(weights_only=True)``; never a pickle.
Every load reports missing and unexpected keys and fails when nothing matches.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import torch
from torch import nn


class WeightsError(ValueError):
    pass


def read_state_dict(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling refusal or corrupt file
        raise WeightsError(f"{path}: cannot be read as a weights-only checkpoint ({type(err).__name__}: "
                           f"{str(err).splitlines()[0]})") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(data, dict) and key in data and isinstance(data[key], dict):
            data = data[key]
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(data).__name__}")
    return data


def _mmdet_swin_to_timm(sd: dict, dims: list[int]) -> dict:
    """mmdetection Swin keys -> timm keys; patch-merging weights from unfold (channel-major)
    to timm's (neighbour-major) channel order."""
    out = {}
    for key, value in sd.items():
        k = key.replace("patch_embed.projection", "patch_embed.proj").replace("attn.w_msa.", "attn.")
        k = k.replace("ffn.layers.0.0", "mlp.fc1").replace("ffn.layers.1", "mlp.fc2")
        m = re.match(r"stages\.(\d+)\.downsample\.(.*)", k)
        if m:  # mmdet: merge at the end of stage i; timm: at the start of stage i+1
            stage = int(m.group(1))
            k = f"layers.{stage + 1}.downsample.{m.group(2)}"
            C = dims[stage]
            perm = torch.tensor([(4 * c + u) for u in (0, 2, 1, 3) for c in range(C)])  # timm index -> unfold index
            value = value[:, perm] if value.dim() == 2 else value[perm]
        k = re.sub(r"^stages\.", "layers.", k)
        n = re.match(r"norm(\d)\.(.*)", k)
        if n:
            k = f"stage_norms.{n.group(1)}.{n.group(2)}" if int(n.group(1)) < len(dims) - 1 else f"body.norm.{n.group(2)}"
            out[k] = value
            continue
        out[k if k.startswith("stage_norms") else f"body.{k}"] = value
    return out


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> dict:
    """Load a backbone checkpoint into a ``PromptedSwin``/``PromptedViT``; returns
    {'loaded', 'missing', 'unexpected'} and raises when no key matches."""
    sd = read_state_dict(path)
    own = backbone.state_dict()
    prefixes = [p for p in ("backbone.stpn.backbone.", "backbone.body.", "backbone.", "module.")
                if any(k.startswith(p) for k in sd)]
    if prefixes:  # the prefix under which most keys are this backbone's own (else the most specific one)
        stripped = [{k[len(p):]: v for k, v in sd.items() if k.startswith(p)} for p in prefixes]
        sd = max(stripped, key=lambda s: sum(k in own for k in s))
    if any(k.startswith("stages.") for k in sd):  # mmdetection Swin
        sd = _mmdet_swin_to_timm(sd, list(backbone.dims))
    elif not any(k in own for k in sd):
        body = getattr(backbone, "body", None)
        if body is not None:  # timm or original layouts of the timm model itself
            filt = getattr(importlib.import_module(type(body).__module__), "checkpoint_filter_fn", None)
            if filt is not None:
                try:
                    sd = filt(sd, body)
                except Exception:  # noqa: BLE001 - leave as is; the match check below reports
                    pass
            sd = {f"body.{k}": v for k, v in sd.items()}
    matched = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    if not matched:
        sample = ", ".join(list(sd)[:3])
        raise WeightsError(f"{path}: no key matches this {type(backbone).__name__} (file keys look like {sample}); "
                           f"is it a checkpoint for another architecture?")
    wrong_shape = [k for k in sd if k in own and own[k].shape != sd[k].shape]
    result = backbone.load_state_dict(matched, strict=False)
    report = {"loaded": len(matched), "missing": list(result.missing_keys),
              "unexpected": [k for k in sd if k not in own] + wrong_shape}
    print(f"loaded {len(matched)} tensors from {path}; {len(report['missing'])} missing, "
          f"{len(report['unexpected'])} unexpected or of another shape")
    return report
