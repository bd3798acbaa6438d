"""The parts of timm stpn uses that timm does not publish, in one place.

timm's public model API (``create_model``, ``forward_features``, ``feature_info``) does not expose
two steps the prompted models must run by themselves: a Swin window attention's relative-position
bias and a ViT's position embedding (with its class/register tokens). They are private methods of
timm's modules, so they may change in any timm release: every use goes through this module, and
``tests/test_timm_api.py`` checks them against their definitions, naming the installed timm
version when they break. ``TESTED`` is the newest timm the suite has passed with.
"""
from __future__ import annotations

import timm
import torch
from torch import nn

TESTED = "1.0.31"


def relative_position_bias(attn: nn.Module) -> torch.Tensor:
    """(1, heads, A, A) relative-position bias of a timm Swin ``WindowAttention`` (A = window area)."""
    return attn._get_rel_pos_bias()


def position_embed(vit: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """A timm ``VisionTransformer``'s patch tokens (B, N, D) -> with its prefix (class/register)
    tokens prepended and its position embedding added (and its position dropout): (B, prefix + N, D)."""
    return vit._pos_embed(tokens)


def version() -> str:
    return timm.__version__
