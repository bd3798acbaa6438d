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
