"""Build a promptable backbone from a timm model name."""
from __future__ import annotations

import timm
from torch import nn

from .swin import PromptedSwin
from .vit import PromptedViT


def create_backbone(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """``PromptedSwin`` or ``PromptedViT`` for a timm model name (e.g. ``swin_tiny_patch4_window7_224``,
    ``vit_small_patch16_224``). kwargs go to the backbone (architecture overrides, out_indices)."""
    if name not in timm.list_models():
        raise ValueError(f"unknown timm model {name!r}; a Swin or ViT name from timm.list_models()")
    if name.startswith("swin") and not name.startswith("swinv2"):
        return PromptedSwin(name, pretrained=pretrained, **kwargs)
    if name.startswith(("vit_", "deit_")):
        return PromptedViT(name, pretrained=pretrained, **kwargs)
    raise ValueError(f"{name!r} is not a supported backbone: use a timm Swin (swin_*) or ViT (vit_*, deit_*)")


def normalization(name: str, mean=None, std=None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of inputs in [0, 1] for backbone ``name``: the given ones, or those
    timm's pretrained config of the model states (``swin_*``: ImageNet's; ``vit_*`` AugReg
    weights: 0.5, 0.5), or ImageNet's for a model timm has no config for."""
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is not None:
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    cfg = timm.get_pretrained_cfg(name)
    if cfg is None or cfg.mean is None or cfg.std is None:
        return tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)
    return tuple(cfg.mean), tuple(cfg.std)
