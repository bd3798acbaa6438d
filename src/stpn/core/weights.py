"""Backbone weights from local files in timm, original Swin or mmdetection layouts.

Files are read safely: safetensors, or ``torch.load(weights_only=True)``; never a pickle.
Every load reports missing and unexpected keys and fails when nothing matches.
"""
from __future__ import annotations

import re
import sys
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
        try:
            return load_file(str(path))
        except Exception as err:  # noqa: BLE001 - SafetensorError or a truncated header
            raise WeightsError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from None
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


def _unfold_order(C: int) -> torch.Tensor:
    """perm[j] = the mmcv unfold channel (c-major, ``4c + k``) of timm's merge channel j
    (neighbour-major, ``k' C + c``; neighbours (0,0), (1,0), (0,1), (1,1) are unfold k 0, 2, 1, 3)."""
    return torch.tensor([4 * c + u for u in (0, 2, 1, 3) for c in range(C)])


def detection_swin_to_ours(sd: dict, dims: list[int]) -> dict:
    """A detection Swin's keys -> ``PromptedSwin`` keys. Two layouts: the original Swin
    (``layers.i``, ``mlp.fc1``; Swin-Transformer-Object-Detection, the COCO Mask R-CNN start)
    and mmdetection (``stages.i``, ``attn.w_msa``, ``ffn.layers``; patch-merging weights in
    unfold order, the released STPN checkpoint). Both merge at the END of stage i (timm: at the
    start of stage i+1) and name their output norms ``norm0..norm{n-1}``. Relative-position
    index and mask buffers are dropped (rebuilt from the window size)."""
    mmdet = any(k.startswith("stages.") for k in sd)
    out = {}
    for key, value in sd.items():
        if key.endswith(("relative_position_index", "attn_mask")):
            continue
        k = key
        if mmdet:
            k = k.replace("patch_embed.projection", "patch_embed.proj").replace("attn.w_msa.", "attn.")
            k = k.replace("ffn.layers.0.0", "mlp.fc1").replace("ffn.layers.1", "mlp.fc2")
            k = re.sub(r"^stages\.", "layers.", k)
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", k)
        if m:
            stage = int(m.group(1))
            k = f"layers.{stage + 1}.downsample.{m.group(2)}"
            if mmdet:
                perm = _unfold_order(dims[stage])
                value = value[:, perm] if value.dim() == 2 else value[perm]
        n = re.match(r"norm(\d+)\.(.*)", k)
        if n:
            stage = int(n.group(1))
            out[f"stage_norms.{stage}.{n.group(2)}" if stage < len(dims) - 1 else f"body.norm.{n.group(2)}"] = value
        else:
            out[f"body.{k}"] = value
    return out


def relative_position_index(wh: int, ww: int) -> torch.Tensor:
    """(A, A) index into the (2wh-1)(2ww-1) bias table: ``(r1-r2+wh-1)(2ww-1) + c1-c2+ww-1``."""
    r, c = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
    r, c = r.flatten(), c.flatten()
    return (r[:, None] - r[None] + wh - 1) * (2 * ww - 1) + (c[:, None] - c[None] + ww - 1)


def ours_to_mmdet_swin(backbone: nn.Module) -> dict:
    """A ``PromptedSwin``'s weights in mmdetection's Swin layout (the inverse of
    ``detection_swin_to_ours``, with the relative-position index buffers mmdetection saves)."""
    dims, n = list(backbone.dims), len(backbone.dims)
    out = {}
    for key, value in backbone.state_dict().items():
        s = re.match(r"stage_norms\.(\d+)\.(.*)", key)
        if s:
            out[f"norm{s.group(1)}.{s.group(2)}"] = value
            continue
        if key.startswith("body.norm."):
            out[f"norm{n - 1}.{key[len('body.norm.'):]}"] = value
            continue
        k = key[len("body."):]
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", k)
        if m:
            stage = int(m.group(1)) - 1
            inverse = torch.argsort(_unfold_order(dims[stage]))
            out[f"stages.{stage}.downsample.{m.group(2)}"] = value[:, inverse] if value.dim() == 2 else value[inverse]
            continue
        k = k.replace("patch_embed.proj", "patch_embed.projection").replace("attn.", "attn.w_msa.")
        k = k.replace("mlp.fc1", "ffn.layers.0.0").replace("mlp.fc2", "ffn.layers.1")
        out[re.sub(r"^layers\.", "stages.", k)] = value
        if k.endswith("attn.w_msa.relative_position_bias_table"):
            stage, block = (int(v) for v in re.findall(r"\d+", k)[:2])
            ws = backbone.body.layers[stage].blocks[block].window_size
            out[re.sub(r"^layers\.", "stages.", k).replace("bias_table", "index")] = relative_position_index(*ws)
    return out


def load_backbone_weights(backbone: nn.Module, path: str | Path, state_dict: dict | None = None) -> dict:
    """Load a backbone checkpoint into a ``PromptedSwin``/``PromptedViT``; returns
    {'loaded', 'missing', 'unexpected'} and raises when no key matches. ``state_dict``: the
    file's contents when the caller has read them already."""
    sd = read_state_dict(path) if state_dict is None else state_dict
    own = backbone.state_dict()
    prefixes = [p for p in ("backbone.stpn.backbone.", "backbone.body.", "detector.backbone.", "backbone.", "module.")
                if any(k.startswith(p) for k in sd)]
    if prefixes:  # the prefix under which most keys are this backbone's own (else the most specific one)
        stripped = [{k[len(p):]: v for k, v in sd.items() if k.startswith(p)} for p in prefixes]
        sd = max(stripped, key=lambda s: sum(k in own for k in s))
    if any(k.startswith("stages.") for k in sd) or (
            any(k.startswith("layers.") for k in sd) and any(re.match(r"norm\d+\.", k) for k in sd)):
        sd = detection_swin_to_ours(sd, list(backbone.dims))  # a detection Swin (mmdetection or original)
    elif not any(k in own for k in sd):
        body = getattr(backbone, "body", None)
        if body is not None:  # timm or original layouts of the timm model itself
            filt = getattr(sys.modules[type(body).__module__], "checkpoint_filter_fn", None)
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
