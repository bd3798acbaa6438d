"""STPN: predict prompts from unprompted support frames, then run the prompted backbone.

    support frames --backbone (no prompts)--> support tokens --predictor--> prompts
    key frame + prompts --backbone--> stage maps (prompts removed)
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbones import create_backbone
from .checks import check_images
from .predictors import build_predictor

PROMPT_DEPTHS = ("shallow", "deep", "deep_block")


class STPN(nn.Module):
    """Spatio-temporal prompting network around a timm Swin or ViT.

    Args:
        backbone: timm model name (``swin_tiny_patch4_window7_224``, ``vit_small_patch16_224``, ...).
        predictor: ``attention`` (released), ``topk_mean`` (released "avg"), ``mixer``, ``decoder``,
            or ``static`` (learned prompts that ignore the supports: VPT, the paper's control; with
            ``deep_block`` it is VPT-deep's fresh prompts per block).
        num_prompts: N_P.
        prompt_depth: ``shallow`` (prompts enter once after patch embedding; released), ``deep`` (fresh
            prompts per stage, from the support tokens of that stage) or ``deep_block`` (fresh
            prompts per block, from the support tokens of the block's stage).
        prompting: False builds the single-frame baseline: the plain backbone, no predictor.
        support_grad: let gradients flow through the support pass (default: no_grad there).
        backbone_kwargs / predictor_kwargs: passed on (e.g. a tiny Swin's ``embed_dim``).
    """

    def __init__(self, backbone: str = "swin_tiny_patch4_window7_224", predictor: str = "attention",
                 num_prompts: int = 5, prompt_depth: str = "shallow", pretrained: bool = False,
                 prompting: bool = True, support_grad: bool = False, legacy_merge: bool = False,
                 backbone_kwargs: dict | None = None, predictor_kwargs: dict | None = None):
        super().__init__()
        if prompt_depth not in PROMPT_DEPTHS:
            raise ValueError(f"prompt_depth must be one of {PROMPT_DEPTHS}, got {prompt_depth!r}")
        if num_prompts < 1:
            raise ValueError(f"num_prompts must be >= 1, got {num_prompts}")
        backbone_kwargs = dict(backbone_kwargs or {})
        if legacy_merge:
            backbone_kwargs["legacy_merge"] = True
        self.backbone = create_backbone(backbone, pretrained=pretrained, **backbone_kwargs)
        self.prompt_depth, self.prompting, self.support_grad = prompt_depth, prompting, support_grad
        self.num_prompts, self.predictor_name = num_prompts, predictor
        dims = self.backbone.dims
        kw = dict(predictor_kwargs or {})
        if not prompting:
            self.predictor = None
        elif prompt_depth == "shallow":
            self.predictor = build_predictor(predictor, dims[-1], self.backbone.embed_dim, num_prompts, **kw)
        elif prompt_depth == "deep":
            self.predictor = nn.ModuleList(build_predictor(predictor, d, d, num_prompts, **kw) for d in dims)
        else:
            self.predictor = nn.ModuleList(
                nn.ModuleList(build_predictor(predictor, d, d, num_prompts, **kw) for _ in range(n))
                for d, n in zip(dims, self.backbone.depths))

    @property
    def reads_support(self) -> bool:
        """False for static prompts: the support frames are not embedded."""
        return self.predictor_name != "static"

    @property
    def support_stages(self) -> list[int]:
        """Stages whose support tokens the predictor reads."""
        n = len(self.backbone.dims)
        return [n - 1] if self.prompt_depth == "shallow" else list(range(n))

    def encode_support(self, support_frames: torch.Tensor):
        """Unprompted pass over support frames (B, K, 3, H, W).

        Returns a dict stage -> tokens (B, K, n_s, d_s) for ``support_stages`` and a dict
        stage -> grid (h_s, w_s). Runs under no_grad unless ``support_grad``.
        """
        if support_frames.dim() != 5 or support_frames.shape[2] != 3:
            raise ValueError(f"support_frames must have shape (B, K, 3, H, W), got {tuple(support_frames.shape)}")
        B, K = support_frames.shape[:2]
        if not self.reads_support:  # static prompts: no support pass, only the batch size travels on
            dims = self.backbone.dims
            return ({s: support_frames.new_zeros(B, K, 0, dims[s]) for s in self.support_stages},
                    {s: (0, 0) for s in self.support_stages})
        with torch.set_grad_enabled(self.support_grad and torch.is_grad_enabled()):
            maps = self.backbone(support_frames.flatten(0, 1))
        tokens, grids = {}, {}
        for s in self.support_stages:
            m = maps[s]
            grids[s] = tuple(m.shape[-2:])
            tokens[s] = m.flatten(2).transpose(1, 2).reshape(B, K, -1, m.shape[1])
        return tokens, grids

    def predict_prompts(self, tokens: dict, grids: dict, offsets: torch.Tensor | None = None):
        """Prompts from support tokens: (B, N_P, D) for shallow, a list per stage for deep,
        a list per stage of lists per block for deep_block."""
        if self.predictor is None:
            raise ValueError("this STPN was built with prompting=False and has no predictor")
        kw = lambda s: dict(grid_size=grids[s], offsets=offsets)  # noqa: E731
        if self.prompt_depth == "shallow":
            s = self.support_stages[0]
            return self.predictor(tokens[s], **kw(s))
        if self.prompt_depth == "deep":
            return [pred(tokens[s], **kw(s)) for s, pred in enumerate(self.predictor)]
        return [[pred(tokens[s], **kw(s)) for pred in preds] for s, preds in enumerate(self.predictor)]

    def forward(self, frames: torch.Tensor, support_frames: torch.Tensor | None = None,
                support_offsets: torch.Tensor | None = None) -> list[torch.Tensor]:
        """frames (B, 3, H, W); support_frames (B, K, 3, H', W'); support_offsets (B, K) frame
        offsets tau - t (used by the decoder predictor). Returns the backbone's stage maps."""
        check_images(frames, self.backbone.input_multiple, "frames")
        if not self.prompting:
            return self.backbone(frames)
        if support_frames is None:
            raise ValueError("STPN with prompting needs support_frames of shape (B, K, 3, H, W); for a "
                             "still image pass copies of itself, or build STPN(prompting=False)")
        if support_frames.dim() != 5 or support_frames.shape[0] != frames.shape[0]:
            raise ValueError(f"support_frames must have shape (B={frames.shape[0]}, K, 3, H, W), "
                             f"got {tuple(support_frames.shape)}")
        if support_frames.shape[1] < 1:
            raise ValueError(f"support_frames must hold K >= 1 frames per clip, got shape {tuple(support_frames.shape)}")
        check_images(support_frames.flatten(0, 1), self.backbone.input_multiple, "support_frames")
        tokens, grids = self.encode_support(support_frames)
        return self.backbone(frames, self.predict_prompts(tokens, grids, support_offsets))

    # streaming -----------------------------------------------------------------------------
    def new_stream(self, policy: str = "causal", num_support: int = 4, stride: int = 1,
                   refresh_every: int | str = 8, video: Sequence[torch.Tensor] | torch.Tensor | None = None):
        """A fresh per-video state for ``step``. See ``stpn.core.streaming.SupportStream``."""
        from .streaming import new_stream
        return new_stream(self, policy, num_support, stride, refresh_every, video)

    def step(self, frame: torch.Tensor, state):
        """Features of the next frame of a stream: returns (stage maps, state)."""
        from .streaming import step
        return step(self, frame, state)
