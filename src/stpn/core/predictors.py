"""DVP predictors: support tokens (B, K, n, d_L) -> dynamic video prompts (B, N_P, D).

All predictors work per sample: nothing is shared between the clips of a batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.models.mlp_mixer import MixerBlock
from torch import nn


def _check_tokens(tokens: torch.Tensor, in_dim: int) -> None:
    if tokens.dim() != 4 or tokens.shape[-1] != in_dim:
        raise ValueError(f"support tokens must have shape (B, K, n, d_L={in_dim}), got {tuple(tokens.shape)}")


class AttentionPredictor(nn.Module):
    """The released predictor: grouped attention of N_P learned queries over all support tokens.

    Linear d_L -> D on every support token (no positional or temporal encoding); queries
    (N_P, D) ~ N(0, 1); q, k, v, out: Linear D -> D; channels split into ``num_groups`` groups,
    softmax(q k^T / sqrt(D / groups)) per group over all K*n tokens. One layer, no residual,
    norm or FFN (111,552 parameters at d_L=768, D=96, N_P=5).
    Released parameter names map as: fc_embed -> q_proj, ref_fc_embed -> k_proj,
    ref_fc -> v_proj, fc -> out_proj (see ``RELEASED_KEYS``).
    """

    RELEASED_KEYS = {"fc_embed": "q_proj", "ref_fc_embed": "k_proj", "ref_fc": "v_proj", "fc": "out_proj"}

    def __init__(self, in_dim: int, prompt_dim: int, num_prompts: int = 5, num_groups: int = 16):
        super().__init__()
        if prompt_dim % num_groups:
            raise ValueError(f"prompt_dim {prompt_dim} must be divisible by num_groups {num_groups}")
        self.in_dim, self.num_groups = in_dim, num_groups
        self.reduction = nn.Linear(in_dim, prompt_dim)
        self.query = nn.Parameter(torch.randn(num_prompts, prompt_dim))
        self.q_proj = nn.Linear(prompt_dim, prompt_dim)
        self.k_proj = nn.Linear(prompt_dim, prompt_dim)
        self.v_proj = nn.Linear(prompt_dim, prompt_dim)
        self.out_proj = nn.Linear(prompt_dim, prompt_dim)

    def forward(self, tokens: torch.Tensor, **_) -> torch.Tensor:
        _check_tokens(tokens, self.in_dim)
        B, G = tokens.shape[0], self.num_groups
        ref = self.reduction(tokens.flatten(1, 2))  # B, T, D
        q = self.q_proj(self.query)  # N_P, D
        q = q.view(q.shape[0], G, -1).transpose(0, 1).expand(B, -1, -1, -1)  # B, G, N_P, D/G
        k = self.k_proj(ref).view(B, ref.shape[1], G, -1).transpose(1, 2)  # B, G, T, D/G
        v = self.v_proj(ref).view(B, ref.shape[1], G, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # B, G, N_P, D/G
        return self.out_proj(out.transpose(1, 2).flatten(2))

    @classmethod
    def convert_released(cls, state_dict: dict) -> dict:
        """Rename a released ``AttentionPredictor`` state dict to this module's names."""
        out = {}
        for key, value in state_dict.items():
            name, _, leaf = key.rpartition(".")
            out[f"{cls.RELEASED_KEYS.get(name, name)}.{leaf}" if name else key] = value
        return out


class TopKMeanPredictor(nn.Module):
    """Released "avg" predictor: per support frame the N_P tokens of largest L1 norm (in
    descending order), averaged over frames, then Linear d_L -> D."""

    def __init__(self, in_dim: int, prompt_dim: int, num_prompts: int = 5):
        super().__init__()
        self.in_dim, self.num_prompts = in_dim, num_prompts
        self.reduction = nn.Linear(in_dim, prompt_dim)

    def forward(self, tokens: torch.Tensor, **_) -> torch.Tensor:
        _check_tokens(tokens, self.in_dim)
        if tokens.shape[2] < self.num_prompts:
            raise ValueError(f"topk_mean needs at least N_P={self.num_prompts} tokens per support frame, "
                             f"got {tokens.shape[2]}")
        idx = tokens.abs().sum(-1).topk(self.num_prompts, dim=-1).indices  # B, K, N_P
        top = tokens.gather(2, idx.unsqueeze(-1).expand(-1, -1, -1, tokens.shape[-1]))
        return self.reduction(top.mean(1))


class MixerPredictor(nn.Module):
    """MLP-Mixer predictor. The paper names it without details; this is our interpretation.

    Each support map is average-pooled to a ``grid`` x ``grid`` token grid; a LayerNorm and a
    token-mixing MLP (grid^2 -> N_P, shared by all frames) give N_P tokens per frame, averaged
    over frames (so any K works); a LayerNorm and a channel-mixing MLP (d_L -> D) give the
    prompts, refined by ``num_blocks`` standard Mixer blocks at (N_P, D).
    """

    def __init__(self, in_dim: int, prompt_dim: int, num_prompts: int = 5, grid: int = 4,
                 hidden: int = 256, num_blocks: int = 1):
        super().__init__()
        self.in_dim, self.grid = in_dim, grid
        self.token_norm = nn.LayerNorm(in_dim)
        self.token_mix = nn.Sequential(nn.Linear(grid * grid, hidden), nn.GELU(), nn.Linear(hidden, num_prompts))
        self.channel_norm = nn.LayerNorm(in_dim)
        self.channel_mix = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, prompt_dim))
        self.blocks = nn.Sequential(*[MixerBlock(prompt_dim, num_prompts) for _ in range(num_blocks)])

    def forward(self, tokens: torch.Tensor, grid_size: tuple[int, int] | None = None, **_) -> torch.Tensor:
        _check_tokens(tokens, self.in_dim)
        B, K, n, d = tokens.shape
        if grid_size is None or grid_size[0] * grid_size[1] != n:
            raise ValueError(f"mixer predictor needs grid_size (h, w) with h*w = n = {n}, got {grid_size}")
        maps = tokens.reshape(B * K, *grid_size, d).permute(0, 3, 1, 2)
        pooled = F.adaptive_avg_pool2d(maps, self.grid).flatten(2)  # B*K, d, g*g
        mixed = self.token_mix(self.token_norm(pooled.transpose(1, 2)).transpose(1, 2))  # B*K, d, N_P
        mixed = mixed.view(B, K, d, -1).mean(1).transpose(1, 2)  # B, N_P, d
        return self.blocks(self.channel_mix(self.channel_norm(mixed)))


class DecoderPredictor(nn.Module):
    """DETR-style decoder: N_P learned queries, pre-LN decoder layers (self-attention,
    cross-attention over the support tokens, FFN, residuals), final LayerNorm.

    Support tokens are projected d_L -> D and get a learned embedding of their frame offset
    tau - t (clipped to +-max_offset; offset 0 when unknown).
    """

    def __init__(self, in_dim: int, prompt_dim: int, num_prompts: int = 5, num_layers: int = 2,
                 num_heads: int = 4, ffn_dim: int | None = None, max_offset: int = 64, dropout: float = 0.0):
        super().__init__()
        self.in_dim, self.max_offset = in_dim, max_offset
        self.input_proj = nn.Linear(in_dim, prompt_dim)
        self.offset_embed = nn.Embedding(2 * max_offset + 1, prompt_dim)
        self.query = nn.Parameter(torch.randn(num_prompts, prompt_dim) * 0.02)
        layer = nn.TransformerDecoderLayer(prompt_dim, num_heads, ffn_dim or 4 * prompt_dim, dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers, norm=nn.LayerNorm(prompt_dim))

    def forward(self, tokens: torch.Tensor, offsets: torch.Tensor | None = None, **_) -> torch.Tensor:
        _check_tokens(tokens, self.in_dim)
        B, K = tokens.shape[:2]
        if offsets is None:
            offsets = torch.zeros(B, K, dtype=torch.long, device=tokens.device)
        if offsets.shape != (B, K):
            raise ValueError(f"offsets must have shape (B={B}, K={K}), got {tuple(offsets.shape)}")
        index = offsets.long().clamp(-self.max_offset, self.max_offset) + self.max_offset
        memory = self.input_proj(tokens) + self.offset_embed(index).unsqueeze(2)  # B, K, n, D
        return self.decoder(self.query.expand(B, -1, -1), memory.flatten(1, 2))


class StaticPredictor(nn.Module):
    """Static prompts (VPT; the released code's ``swin_vpt.py``, the paper's "static vs dynamic"
    control): N_P learned tokens that do not depend on the supports, so the gain of STPN can be
    told apart from the gain of more tokens. Uniform init in +-sqrt(6 / (3 * 4^2 + D)), VPT's rule
    for a 4-pixel patch. ``reads_support = False``: STPN skips the support pass for it."""

    reads_support = False

    def __init__(self, in_dim: int, prompt_dim: int, num_prompts: int = 5):
        super().__init__()
        self.in_dim = in_dim
        bound = math.sqrt(6.0 / (3 * 4 ** 2 + prompt_dim))
        self.prompts = nn.Parameter(torch.empty(num_prompts, prompt_dim).uniform_(-bound, bound))

    def forward(self, tokens: torch.Tensor, **_) -> torch.Tensor:
        """tokens (B, K, n, d_L) give only the batch size (n may be 0); returns (B, N_P, D)."""
        _check_tokens(tokens, self.in_dim)
        return self.prompts.expand(tokens.shape[0], -1, -1)


PREDICTORS = {
    "attention": AttentionPredictor,
    "static": StaticPredictor,
    "topk_mean": TopKMeanPredictor,
    "mixer": MixerPredictor,
    "decoder": DecoderPredictor,
}


def build_predictor(name: str, in_dim: int, prompt_dim: int, num_prompts: int, **kwargs) -> nn.Module:
    if name not in PREDICTORS:
        raise ValueError(f"unknown predictor {name!r}; choose one of {sorted(PREDICTORS)}")
    return PREDICTORS[name](in_dim, prompt_dim, num_prompts, **kwargs)
