"""Input checks shared by the core modules: errors name the argument and the expected shape."""
from __future__ import annotations

import torch


def check_images(images: torch.Tensor, patch_size=(1, 1), name: str = "images") -> None:
    """images must be (B, 3, H, W) with H and W divisible by ``patch_size`` ((1, 1): any size)."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of shape (B, 3, H, W), got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(images.shape)}")
    ph, pw = patch_size
    H, W = images.shape[-2:]
    if H % ph or W % pw:
        raise ValueError(f"{name} height and width must be divisible by the patch size {ph}x{pw}, "
                         f"got {H}x{W}")


def check_prompts(prompts: torch.Tensor, batch: int, width: int, name: str = "prompts") -> None:
    """prompts must be (B, P, width)."""
    if prompts.dim() != 3 or prompts.shape[0] != batch or prompts.shape[2] != width:
        raise ValueError(f"{name} must have shape (B={batch}, P, D={width}), got {tuple(prompts.shape)}")
