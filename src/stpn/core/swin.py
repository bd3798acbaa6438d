"""Swin Transformer with spatio-temporal prompts, running timm's own modules.

The weights, norms, MLPs and attention projections are timm's; this file only re-states the
window attention so that each image's prompts join every one of its windows (SPEC section 2).

Shapes: images (B, 3, H, W); patch tokens (B, h, w, C) as in timm; prompts (B, P, C).
"""
from __future__ import annotations

from typing import Sequence

import timm
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformer, window_partition, window_reverse
from torch import nn

from .checks import check_images, check_prompts
from .timm_api import relative_position_bias

# Prompt rows are few (N_P) but a separate matmul for them re-reads the whole weight matrix, which
# dominates in the wide late stages; there the prompts join the patch rows in one matmul.
# In the early stages (many patches, narrow weights) copying the patches costs more than that.
FUSE_TOKENS_PER_CHANNEL = 4


def token_wise(fn, x: torch.Tensor, p: torch.Tensor | None):
    """Apply a token-wise module to patches x (B, ..., C) and prompts p (B, P, C)."""
    if p is None:
        return fn(x), None
    B, C = x.shape[0], x.shape[-1]
    n = x[0].numel() // C
    if n > FUSE_TOKENS_PER_CHANNEL * C:
        return fn(x), fn(p)
    y = fn(torch.cat([p, x.reshape(B, n, C)], dim=1))
    return y[:, p.shape[1]:].reshape(*x.shape[:-1], y.shape[-1]), y[:, :p.shape[1]]


def _sdpa(q, k, v, mask=None, dropout_p: float = 0.0) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` on (B, nW, heads, L, d) tensors run as 4-D (the form
    every backend and the ONNX exporter take), without copying the mask: a mask (1, heads, L, S)
    shared by all windows broadcasts over the windows folded into the batch; a mask per window
    (nW, heads, L, S) folds with the windows into the heads and broadcasts over the batch."""
    B, nW, h = q.shape[:3]
    if mask is not None and mask.shape[0] != 1:
        fold = lambda t: t.flatten(1, 2)  # noqa: E731 - (B, nW*heads, L, d)
        out = F.scaled_dot_product_attention(fold(q), fold(k), fold(v), attn_mask=mask.flatten(0, 1)[None],
                                             dropout_p=dropout_p)
        return out.unflatten(1, (nW, h))
    out = F.scaled_dot_product_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), attn_mask=mask,
                                         dropout_p=dropout_p)
    return out.unflatten(0, (B, nW))


def _sdpa_lse(q, k, v, mask, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """As ``_sdpa`` (no dropout), also returning the log-sum-exp of each query's logits:
    (B, nW, heads, L, d) and (B, nW, heads, L). The CPU flash kernel computes both in one pass;
    it is the only private PyTorch call of this file (``_LSE_KERNEL``), and its log-sum-exp carries
    no gradient, so it serves inference only."""
    B, nW, h = q.shape[:3]
    if mask is not None and mask.shape[0] != 1:
        fold = lambda t: t.flatten(1, 2)  # noqa: E731 - (B, nW*heads, L, d)
        out, lse = _LSE_KERNEL(fold(q), fold(k), fold(v), 0.0, False, attn_mask=mask.flatten(0, 1)[None],
                               scale=scale)
        return out.unflatten(1, (nW, h)), lse.unflatten(1, (nW, h))
    out, lse = _LSE_KERNEL(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), 0.0, False, attn_mask=mask,
                           scale=scale)
    return out.unflatten(0, (B, nW)), lse.unflatten(0, (B, nW))


_LSE_KERNEL = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _merge(out_a, lse_a, out_b, lse_b) -> torch.Tensor:
    """Softmax attention over the union of two key sets, from each set's normalised output and
    log-sum-exp (the merge ring and split-KV attention use): weights exp(lse_part - lse_union)."""
    lse = torch.logaddexp(lse_a, lse_b)
    return out_a * (lse_a - lse).exp().unsqueeze(-1) + out_b * (lse_b - lse).exp().unsqueeze(-1)


def _split_prompt_attention(attn: nn.Module, windows, q, k, v, q_p, k_p, v_p, bias):
    """The ``"split"`` formula: (B, nW, A, C) patch outputs and (B, P, C) prompt outputs, before
    the output projection. windows (B, nW, A, C) are the qkv layer's inputs; q, k, v
    (B, nW, h, A, d) and q_p, k_p, v_p (B, h, P, d) its outputs; bias (1 or nW, h, A, A).

    Patch queries: the windows' own keys through the fused kernel, which also returns each
    query's log-sum-exp; the prompt keys' logits of all N = nW*A tokens in one product with the
    qkv layer's input, ``x (W_q,h^T k_p,h) + b_q,h . k_p,h`` (= q . k_p, without reading q in its
    windowed layout); the two merged with a shared log-sum-exp, the prompt values added by one
    product against a block-diagonal (h*P, C) matrix. Prompt queries: ``x (W_k,h^T q_p,h) +
    b_k,h . q_p,h`` for their logits over every window key, normalised per window with the
    prompt-prompt logits, and summed over windows as one (h*P, N) x (N, C) product whose diagonal
    head blocks are the outputs.
    """
    B, nW, A, C = windows.shape
    h, P, d = q_p.shape[1], q_p.shape[2], q_p.shape[3]
    N, scale = nW * A, d ** -0.5
    x = windows.reshape(B, N, C)
    weight = attn.qkv.weight.view(3, h, d, C)
    qkv_bias = attn.qkv.bias.view(3, h, d) if attn.qkv.bias is not None else weight.new_zeros(3, h, d)

    def logits_against(proj: int, vectors):  # x . (W_proj,h^T u) + b_proj,h . u for u: (B, h, P, d) -> B,N,h,P
        u = vectors * scale
        matrix = torch.einsum("hdc,bhpd->bchp", weight[proj], u).reshape(B, C, h * P)
        offset = torch.einsum("hd,bhpd->bhp", qkv_bias[proj], u).reshape(B, 1, h * P)
        return torch.baddbmm(offset, x, matrix).view(B, N, h, P)

    eye = torch.eye(h, dtype=v_p.dtype, device=v_p.device).view(1, h, 1, h, 1)
    # patch queries over [window keys (fused kernel), prompt keys]
    out_w, lse_w = _sdpa_lse(q, k, v, bias, scale)  # B,nW,h,A,d and B,nW,h,A
    logits_xp = logits_against(0, k_p)  # B,N,h,P
    lse_w = lse_w.transpose(2, 3).reshape(B, N, h)
    lse = torch.logaddexp(lse_w, logits_xp.logsumexp(-1))  # B,N,h: over the union
    out_x = out_w.transpose(2, 3).reshape(B, N, h, d) * (lse_w - lse).exp().unsqueeze(-1)
    prompt_values = (v_p.unsqueeze(3) * eye).reshape(B, h * P, C)  # block-diagonal: head h's P values
    out_x = torch.baddbmm(out_x.view(B, N, C), (logits_xp - lse.unsqueeze(-1)).exp().view(B, N, h * P),
                          prompt_values).view(B, nW, A, C)
    # prompt queries over [prompt keys, the keys of each window], averaged over the windows
    logits_px = logits_against(1, q_p).view(B, nW, A, h, P)
    logits_pp = (q_p * scale) @ k_p.transpose(-1, -2)  # B,h,P,P
    lse_pp = logits_pp.logsumexp(-1)  # B,h,P
    lse_win = torch.logaddexp(logits_px.logsumexp(2), lse_pp.unsqueeze(1))  # B,nW,h,P: per window
    weights = (logits_px - lse_win.unsqueeze(2)).exp().view(B, N, h * P)
    values = v.transpose(2, 3).reshape(B, N, C)
    from_windows = (weights.transpose(1, 2) @ values).view(B, h, P, h, d).diagonal(dim1=1, dim2=3)  # B,P,d,h
    from_prompts = (lse_pp.unsqueeze(1) - lse_win).exp().sum(1).unsqueeze(-1) * (logits_pp.softmax(-1) @ v_p)
    out_p = (from_windows.permute(0, 3, 1, 2) + from_prompts) / nW  # B,h,P,d
    return out_x, out_p.transpose(1, 2).reshape(B, P, C)


# Which exact formula prompted window attention runs (``_shared_prompt_path``): "auto", or one of
# "concat", "split", "logits" for every call (benchmarks/overhead.py compares them).
PROMPT_ATTENTION = "auto"


def _shared_prompt_path(q: torch.Tensor, dropout: float) -> str:
    """Which exact formula ``window_attention`` runs with prompts (all three are equal to 1e-5):

    - ``"concat"``: the prompt keys and values concatenated into every window for one SDPA call
      per query set (the released code's layout);
    - ``"split"``: the windows' own keys through the fused CPU kernel with its log-sum-exp, every
      prompt logit in one product with the qkv layer's input, merged (``_split_prompt_attention``;
      inference on CPU only: the kernel's log-sum-exp carries no gradient);
    - ``"logits"``: the patch queries' window and prompt logits joined before one softmax, the
      prompt queries merged per window by log-sum-exp, in plain tensor algebra (differentiable).

    "auto" picks by measurement (benchmarks/overhead.py, docs/experiments.md): on the 2-core CPU
    "concat" is the fastest at every size, inference (224: 1.13-1.15x the plain pass vs 1.32-1.37x
    split) and training (224x320: 1.06x vs 1.08x logits): the split's extra small operations cost
    more there than the copies it avoids. No GPU has
    measured the split yet, so "auto" is "concat" there too. Attention dropout always takes
    "concat" (its random mask is defined per window copy).
    """
    path = PROMPT_ATTENTION
    if path == "auto" or dropout > 0:
        return "concat"
    if path == "split" and (_LSE_KERNEL is None or q.device.type != "cpu" or (torch.is_grad_enabled()
                                                                              and q.requires_grad)):
        return "logits"
    return path


def window_attention(attn: nn.Module, windows: torch.Tensor, prompts: torch.Tensor | None,
                     mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Prompted window self-attention with timm's ``WindowAttention`` weights.

    windows: (B, nW, A, C) tokens of each image's nW windows of A = wh*ww tokens.
    prompts: (B, P, C) or None. Each image's prompts join all of its windows: a patch query
    attends over [its window's A keys, the image's P prompt keys]; a prompt query attends, in
    every window, over [P prompt keys, that window's A keys], and its output is the mean over the
    windows. The relative-position bias and shift mask are zero on prompt rows and columns.
    Prompt q/k/v are computed once per image; ``_shared_prompt_path`` says which exact formula
    combines them with the windows' (the default copies the prompt keys and values into every window).
    mask: (nW, A, A) additive shift mask or None.
    Returns (B, nW, A, C) window outputs and (B, P, C) prompt outputs.
    """
    B, nW, A, C = windows.shape
    heads = attn.num_heads
    dropout = attn.attn_drop.p if attn.training else 0.0
    qkv, qkv_p = token_wise(attn.qkv, windows, prompts)
    q, k, v = qkv.reshape(B, nW, A, 3, heads, -1).permute(3, 0, 1, 4, 2, 5).unbind(0)  # B,nW,h,A,d
    bias = relative_position_bias(attn)  # (1, heads, A, A)
    if mask is not None:
        bias = bias + mask.unsqueeze(1).to(bias.dtype)  # (nW, heads, A, A)
    bias = bias.to(q.dtype)
    if prompts is None:
        out = _sdpa(q, k, v, bias, dropout)
        return attn.proj_drop(attn.proj(out.transpose(-3, -2).flatten(-2))), None
    P = prompts.shape[1]
    q_p, k_p, v_p = qkv_p.reshape(B, P, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # B,h,P,d
    path = _shared_prompt_path(q, dropout)
    if path == "concat":
        k_all = torch.cat([k_p.unsqueeze(1).expand(-1, nW, -1, -1, -1), k], dim=-2)  # B,nW,h,P+A,d
        v_all = torch.cat([v_p.unsqueeze(1).expand(-1, nW, -1, -1, -1), v], dim=-2)
        out_x = _sdpa(q, k_all, v_all, F.pad(bias, (P, 0)), dropout)  # B,nW,h,A,d
        out_p = _sdpa(q_p.unsqueeze(1).expand(-1, nW, -1, -1, -1), k_all, v_all, None, dropout).mean(1)  # B,h,P,d
    elif path == "split":
        out_x, out_p = _split_prompt_attention(attn, windows, q, k, v, q_p, k_p, v_p, bias)  # B,nW,A,C and B,P,C
        out_x, out_p = token_wise(attn.proj, out_x, out_p)
        return attn.proj_drop(out_x), attn.proj_drop(out_p)
    else:
        scale = q.shape[-1] ** -0.5
        k_p, v_p = k_p.unsqueeze(1), v_p.unsqueeze(1)  # B,1,h,P,d: broadcast over the windows, not copied
        logits_xp = (q * scale) @ k_p.transpose(-1, -2)  # B,nW,h,A,P: patch queries x prompt keys
        logits_px = (q_p.unsqueeze(1) * scale) @ k.transpose(-1, -2)  # B,nW,h,P,A: prompt queries x window keys
        logits_pp = (q_p * scale) @ k_p.squeeze(1).transpose(-1, -2)  # B,h,P,P: the same in every window
        logits = torch.cat([logits_xp, (q * scale) @ k.transpose(-1, -2) + bias], dim=-1)  # B,nW,h,A,P+A
        weights = logits.softmax(-1)
        out_x = weights[..., :P] @ v_p + weights[..., P:] @ v
        out_p = _merge(logits_px.softmax(-1) @ v, logits_px.logsumexp(-1),
                       (logits_pp.softmax(-1) @ v_p.squeeze(1)).unsqueeze(1), logits_pp.logsumexp(-1).unsqueeze(1))
        out_p = out_p.mean(1)  # B,h,P,d: the prompts' outputs averaged over the windows
    out_x, out_p = token_wise(attn.proj, out_x.transpose(-3, -2).flatten(-2), out_p.transpose(1, 2).flatten(-2))
    return attn.proj_drop(out_x), attn.proj_drop(out_p)


def _shift_mask(block: nn.Module, padded: torch.Tensor) -> torch.Tensor | None:
    """timm's shifted-window mask (nW, A, A) for a padded (B, Hp, Wp, C) map, or None."""
    return block.get_attn_mask(padded) if any(block.shift_size) else None


def _drop_path(module: nn.Module, x: torch.Tensor, p: torch.Tensor | None):
    """Stochastic depth with one decision per sample for its patches and its prompts."""
    if isinstance(module, nn.Identity) or not module.training or p is None:
        return module(x), (None if p is None else module(p))
    B, C = x.shape[0], x.shape[-1]
    joint = module(torch.cat([p, x.reshape(B, -1, C)], dim=1))
    return joint[:, p.shape[1]:].reshape(x.shape), joint[:, :p.shape[1]]


def block_forward(block: nn.Module, x: torch.Tensor, p: torch.Tensor | None):
    """One timm ``SwinTransformerBlock`` on patches x (B, H, W, C) and prompts p (B, P, C).

    As the original Swin, mmdetection and the released code: pad the map to a multiple of the
    window (zeros after norm1), THEN roll, build the shift mask on the padded map, roll back and
    crop. (timm rolls first and pads after, which lets tokens that wrap around attend across the
    image border whenever the grid is not a multiple of the window.)
    """
    B, H, W, C = x.shape
    wh, ww = block.window_size
    sh, sw = block.shift_size
    y = F.pad(block.norm1(x), (0, 0, 0, (ww - W % ww) % ww, 0, (wh - H % wh) % wh))
    Hp, Wp = y.shape[1:3]
    if sh or sw:
        y = torch.roll(y, shifts=(-sh, -sw), dims=(1, 2))
    windows = window_partition(y, (wh, ww)).view(B, -1, wh * ww, C)
    out_x, out_p = window_attention(block.attn, windows, None if p is None else block.norm1(p),
                                    _shift_mask(block, y))
    y = window_reverse(out_x.reshape(-1, wh, ww, C), (wh, ww), Hp, Wp)
    if sh or sw:
        y = torch.roll(y, shifts=(sh, sw), dims=(1, 2))
    y = y[:, :H, :W]
    y, out_p = _drop_path(block.drop_path1, y, out_p)
    x = x + y
    if p is not None:
        p = p + out_p
    y, yp = token_wise(lambda t: block.mlp(block.norm2(t)), x, p)
    y, yp = _drop_path(block.drop_path2, y, yp)
    x = x + y
    if p is not None:
        p = p + yp
    return x, p


def widen_prompts(p: torch.Tensor, legacy: bool = False) -> torch.Tensor:
    """Widen prompts (B, P, C) -> (B, P, 4C) for timm's ``PatchMerging``.

    timm concatenates the 2x2 neighbours position-major, so four copies of a prompt are
    ``[p, p, p, p]``. ``legacy=True`` reproduces the released code, which concatenated
    ``[p, p, p, p]`` in mmcv's unfold layout (channel-major): in timm's order that is
    ``w[k*C + c] = p[(4c + u(k)) % C]`` with u = (0, 2, 1, 3) mapping timm's neighbour index to
    the unfold kernel index.
    """
    C = p.shape[-1]
    if not legacy:
        return p.repeat(1, 1, 4)
    unfold_pos = torch.tensor([0, 2, 1, 3], device=p.device)
    channel = torch.arange(C, device=p.device)
    index = (4 * channel[None, :] + unfold_pos[:, None]) % C  # (4, C): neighbour k, channel c
    return p[..., index.reshape(-1)]


class PromptedSwin(nn.Module):
    """A timm Swin whose forward takes prompts and returns stage maps with prompts removed.

    Args:
        model_name: any timm Swin (``swin_tiny_patch4_window7_224``, ...); architecture kwargs
            such as ``embed_dim``, ``depths``, ``num_heads``, ``window_size`` override it, which
            is how tests build a tiny Swin.
        pretrained: load timm's pretrained weights (hub download; honours ``HF_HUB_OFFLINE``).
        legacy_merge: widen prompts at patch merging in the released (mis-ordered) layout.
        out_indices: which stages to return.
        **kwargs: passed to ``timm.create_model``. Defaults keep windows and shifts fixed at
            any input size (``always_partition=True``, ``strict_img_size=False``), as the
            detection Swin does.

    ``forward(images, prompts)``: prompts are None (plain Swin), a tensor (B, P, embed_dim)
    (shallow: inserted after patch embedding, travel through all stages), a list of one tensor
    (B, P, C_s) per stage (deep: inserted at the stage input after merging, removed at its
    output) or a list per stage of lists with one tensor per block (deep, per block).
    Any image size is accepted, as in the released detection Swin: the image is zero-padded
    bottom/right to a multiple of the patch size, and a map with an odd side is zero-padded
    bottom/right before each patch merging. Stage s returns a (B, C_s, h_s, w_s) map after the
    stage's output norm, with h_0 = ceil(H / patch), h_s = ceil(h_{s-1} / 2): it covers the
    padded image, so its top-left token is anchored at pixel (0, 0) and its last row/column may
    extend past the image by less than one stride.
    """

    def __init__(self, model_name: str = "swin_tiny_patch4_window7_224", pretrained: bool = False,
                 legacy_merge: bool = False, out_indices: Sequence[int] = (0, 1, 2, 3), **kwargs):
        super().__init__()
        kwargs = {"num_classes": 0, "always_partition": True, "strict_img_size": False, **kwargs}
        body = timm.create_model(model_name, pretrained=pretrained, **kwargs)
        if not isinstance(body, SwinTransformer):
            raise ValueError(f"{model_name!r} is a {type(body).__name__}, not a timm SwinTransformer")
        self.body = body
        self.legacy_merge = legacy_merge
        self.dims = [info["num_chs"] for info in body.feature_info]
        self.strides = [info["reduction"] for info in body.feature_info]
        self.depths = [len(stage.blocks) for stage in body.layers]
        self.out_indices = tuple(out_indices)
        self.patch_size = tuple(body.patch_embed.patch_size)
        self.input_multiple = (1, 1)  # any size: padded bottom/right to the patch size in forward
        # output norms of stages 1..n-1 are new (as in detection Swins); the last is timm's norm
        self.stage_norms = nn.ModuleList(nn.LayerNorm(d, eps=body.norm.eps) for d in self.dims[:-1])

    def out_norm(self, stage: int) -> nn.Module:
        return self.body.norm if stage == len(self.dims) - 1 else self.stage_norms[stage]

    @property
    def embed_dim(self) -> int:
        return self.dims[0]

    def _prompt_plan(self, prompts, batch: int):
        """Validate prompts; return (shallow tensor or None, per-stage list, per-block lists)."""
        if prompts is None or isinstance(prompts, torch.Tensor):
            if prompts is not None:
                check_prompts(prompts, batch, self.embed_dim, "prompts")
            return prompts, None, None
        if len(prompts) != len(self.dims):
            raise ValueError(f"deep prompts need one entry per stage ({len(self.dims)}), got {len(prompts)}")
        if all(isinstance(p, torch.Tensor) for p in prompts):
            for s, p in enumerate(prompts):
                check_prompts(p, batch, self.dims[s], f"prompts[{s}]")
            return None, list(prompts), None
        for s, stage_prompts in enumerate(prompts):
            if len(stage_prompts) != self.depths[s]:
                raise ValueError(f"prompts[{s}] needs one tensor per block ({self.depths[s]}), "
                                 f"got {len(stage_prompts)}")
            for b, p in enumerate(stage_prompts):
                check_prompts(p, batch, self.dims[s], f"prompts[{s}][{b}]")
        return None, None, [list(s) for s in prompts]

    def forward(self, images: torch.Tensor, prompts=None) -> list[torch.Tensor]:
        check_images(images, self.input_multiple, "images")
        p, per_stage, per_block = self._prompt_plan(prompts, images.shape[0])
        ph, pw = self.patch_size
        H, W = images.shape[-2:]
        images = F.pad(images, (0, (pw - W % pw) % pw, 0, (ph - H % ph) % ph))
        x = self.body.patch_embed(images)  # B, ceil(H/ph), ceil(W/pw), C
        outs = []
        for s, stage in enumerate(self.body.layers):
            if not isinstance(stage.downsample, nn.Identity):
                x = stage.downsample(x)
                if p is not None:
                    merge = stage.downsample
                    p = merge.reduction(merge.norm(widen_prompts(p, self.legacy_merge)))
            if per_stage is not None:
                p = per_stage[s]
            for b, block in enumerate(stage.blocks):
                if per_block is not None:
                    p = per_block[s][b]
                x, p = block_forward(block, x, p)
                if per_block is not None:
                    p = None
            if per_stage is not None:
                p = None
            if s in self.out_indices:
                outs.append(self.out_norm(s)(x).permute(0, 3, 1, 2).contiguous())
        return outs
