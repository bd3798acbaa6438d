"""Vision Transformer with spatio-temporal prompts, running timm's own blocks.

Prompts are concatenated after the prefix (class/register) tokens and after the position
embedding, so they carry no position; every block is token-wise or global attention, so timm's
blocks run unchanged on [prefix, prompts, patches].
"""
from __future__ import annotations

from typing import Sequence

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .checks import check_images, check_prompts
from .timm_api import position_embed


class PromptedViT(nn.Module):
    """A timm ViT whose forward takes prompts and returns feature maps with prompts removed.

    Args:
        model_name: any timm ``VisionTransformer`` (``vit_small_patch16_224``, ...); kwargs such
            as ``embed_dim``, ``depth``, ``num_heads`` override its architecture.
        out_indices: blocks whose outputs are returned (default: 4 evenly spaced, the last
            included). They also split the blocks into stages for deep prompting.
        norm: apply the final LayerNorm to every returned map.
        **kwargs: passed to ``timm.create_model`` (default ``dynamic_img_size=True``).

    ``forward(images, prompts)``: prompts are None, a tensor (B, P, D) (shallow), a list of one
    tensor per stage (deep) or a list per stage of lists with one tensor per block.
    Returns a list of (B, D, H/patch, W/patch) maps.
    """

    def __init__(self, model_name: str = "vit_small_patch16_224", pretrained: bool = False,
                 out_indices: Sequence[int] | None = None, norm: bool = True, **kwargs):
        super().__init__()
        kwargs = {"num_classes": 0, "dynamic_img_size": True, **kwargs}
        body = timm.create_model(model_name, pretrained=pretrained, **kwargs)
        if not isinstance(body, VisionTransformer):
            raise ValueError(f"{model_name!r} is a {type(body).__name__}, not a timm VisionTransformer")
        self.body = body
        depth = len(body.blocks)
        if out_indices is None:
            out_indices = sorted({max(0, depth * (i + 1) // 4 - 1) for i in range(4)})
        self.out_indices = tuple(out_indices)
        if list(self.out_indices) != sorted(set(self.out_indices)) or self.out_indices[-1] >= depth:
            raise ValueError(f"out_indices must be increasing block indices < {depth}, got {out_indices}")
        self.norm = norm
        self.patch_size = tuple(body.patch_embed.patch_size)
        self.input_multiple = self.patch_size  # image sides must divide by the patch size
        self.dims = [body.embed_dim] * len(self.out_indices)
        self.strides = [self.patch_size[0]] * len(self.out_indices)
        starts = (0,) + tuple(i + 1 for i in self.out_indices[:-1])
        self.stage_blocks = [list(range(a, b + 1)) for a, b in zip(starts, self.out_indices)]
        self.depths = [len(b) for b in self.stage_blocks]

    @property
    def embed_dim(self) -> int:
        return self.body.embed_dim

    @property
    def num_prefix_tokens(self) -> int:
        return self.body.num_prefix_tokens

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch tokens with prefix tokens and position embedding: (B, prefix + h*w, D)."""
        check_images(images, self.input_multiple, "images")
        x = self.body.patch_embed(images)
        x = position_embed(self.body, x)
        x = self.body.patch_drop(x)
        return self.body.norm_pre(x)

    def _prompt_plan(self, prompts, batch: int):
        """Return a per-block list of (prompts to insert or None, remove after this block)."""
        D = self.embed_dim
        nblocks = self.out_indices[-1] + 1
        plan: list[tuple[torch.Tensor | None, bool]] = [(None, False)] * nblocks
        if prompts is None:
            return plan
        if isinstance(prompts, torch.Tensor):
            check_prompts(prompts, batch, D, "prompts")
            plan[0] = (prompts, False)
            return plan
        if len(prompts) != len(self.stage_blocks):
            raise ValueError(f"deep prompts need one entry per stage ({len(self.stage_blocks)}), "
                             f"got {len(prompts)}")
        for s, blocks in enumerate(self.stage_blocks):
            entry = prompts[s]
            if isinstance(entry, torch.Tensor):
                check_prompts(entry, batch, D, f"prompts[{s}]")
                plan[blocks[0]] = (entry, blocks[0] == blocks[-1])
                plan[blocks[-1]] = (plan[blocks[-1]][0], True)
            else:
                if len(entry) != len(blocks):
                    raise ValueError(f"prompts[{s}] needs one tensor per block ({len(blocks)}), "
                                     f"got {len(entry)}")
                for j, (b, p) in enumerate(zip(blocks, entry)):
                    check_prompts(p, batch, D, f"prompts[{s}][{j}]")
                    plan[b] = (p, True)
        return plan

    def forward_tokens(self, tokens: torch.Tensor, prompts=None) -> list[torch.Tensor]:
        """Run the blocks on embedded tokens (B, prefix + n, D); return the tokens at
        ``out_indices`` with prompts removed, each (B, prefix + n, D)."""
        npre = self.num_prefix_tokens
        plan = self._prompt_plan(prompts, tokens.shape[0])
        x, P, outs = tokens, 0, []
        for i, (insert, remove) in enumerate(plan):
            if insert is not None:
                P = insert.shape[1]
                x = torch.cat([x[:, :npre], insert, x[:, npre:]], dim=1)
            x = self.body.blocks[i](x)
            if i in self.out_indices:
                y = torch.cat([x[:, :npre], x[:, npre + P:]], dim=1) if P else x
                outs.append(self.body.norm(y) if self.norm else y)
            if remove and P:
                x = torch.cat([x[:, :npre], x[:, npre + P:]], dim=1)
                P = 0
        return outs

    def forward(self, images: torch.Tensor, prompts=None) -> list[torch.Tensor]:
        B, _, H, W = images.shape
        h, w = H // self.patch_size[0], W // self.patch_size[1]
        outs = self.forward_tokens(self.embed(images), prompts)
        npre = self.num_prefix_tokens
        return [y[:, npre:].reshape(B, h, w, -1).permute(0, 3, 1, 2).contiguous() for y in outs]
