"""The prompted Swin against a plain statement of the original Swin at sizes that are not a
multiple of the window (nearly every real frame): pad -> roll -> masked window attention ->
roll back -> crop, written here from the math with explicit loops over windows."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_SWIN
from stpn.core.swin import PromptedSwin, block_forward


def segments(n: int, window: int, shift: int) -> torch.Tensor:
    """Shift-mask region of each row (or column) of the rolled, padded map: the last window is
    cut at -shift, the rest is one region (the original Swin's three slices)."""
    label = torch.zeros(n, dtype=torch.long)
    label[n - window:n - shift] = 1
    label[n - shift:] = 2
    return label


def relative_bias(attn, wh: int, ww: int) -> torch.Tensor:
    """(heads, A, A) bias of token (r1, c1) attending (r2, c2): table[(r1-r2+wh-1)(2ww-1) + c1-c2+ww-1]."""
    r, c = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
    r, c = r.flatten(), c.flatten()
    index = (r[:, None] - r[None] + wh - 1) * (2 * ww - 1) + (c[:, None] - c[None] + ww - 1)
    return attn.relative_position_bias_table[index].permute(2, 0, 1)


def reference_block(block, x, p):
    """x (B, H, W, C), p (B, P, C) or None."""
    B, H, W, C = x.shape
    (wh, ww), (sh, sw) = block.window_size, block.shift_size
    attn, heads = block.attn, block.attn.num_heads
    Hp, Wp = math.ceil(H / wh) * wh, math.ceil(W / ww) * ww
    y = torch.zeros(B, Hp, Wp, C)
    y[:, :H, :W] = block.norm1(x)                                    # 1. pad
    y = torch.roll(y, (-sh, -sw), (1, 2))                            # 2. roll
    region = segments(Hp, wh, sh)[:, None] * 3 + segments(Wp, ww, sw)[None] if (sh or sw) \
        else torch.zeros(Hp, Wp, dtype=torch.long)
    P = 0 if p is None else p.shape[1]
    out = torch.zeros_like(y)
    out_p = torch.zeros(B, P, C)
    n_windows = (Hp // wh) * (Wp // ww)
    for b in range(B):
        for i in range(0, Hp, wh):
            for j in range(0, Wp, ww):                               # 3. window attention
                tokens = y[b, i:i + wh, j:j + ww].reshape(-1, C)
                if P:
                    tokens = torch.cat([block.norm1(p[b]), tokens])
                q, k, v = attn.qkv(tokens).reshape(len(tokens), 3, heads, -1).permute(1, 2, 0, 3)
                logits = q @ k.transpose(-1, -2) / math.sqrt(C / heads)
                lab = region[i:i + wh, j:j + ww].flatten()
                patch_terms = relative_bias(attn, wh, ww) - 100.0 * (lab[:, None] != lab[None])
                logits[:, P:, P:] += patch_terms                     # prompt rows/columns get 0
                o = attn.proj((logits.softmax(-1) @ v).transpose(0, 1).reshape(len(tokens), C))
                out[b, i:i + wh, j:j + ww] = o[P:].reshape(wh, ww, C)
                if P:
                    out_p[b] += o[:P] / n_windows                    # prompts: mean over windows
    out = torch.roll(out, (sh, sw), (1, 2))[:, :H, :W]               # 4. roll back, 5. crop
    x = x + out
    x = x + block.mlp(block.norm2(x))
    if P:
        p = p + out_p
        p = p + block.mlp(block.norm2(p))
    return x, p


def reference_merge(merge, x, p):
    """Original Swin patch merging; odd sides zero-padded bottom/right; a prompt is 4 copies."""
    B, H, W, C = x.shape
    x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    x = merge.reduction(merge.norm(x))
    if p is not None:
        p = merge.reduction(merge.norm(torch.cat([p, p, p, p], -1)))
    return x, p


def reference_forward(model: PromptedSwin, images, prompts=None):
    """Shallow (a tensor) or deep (one tensor per stage) prompts; stage maps (B, C, h, w)."""
    body, (ph, pw) = model.body, model.patch_size
    H, W = images.shape[-2:]
    images = F.pad(images, (0, -W % pw, 0, -H % ph))
    x = body.patch_embed.norm(body.patch_embed.proj(images).permute(0, 2, 3, 1))
    deep = isinstance(prompts, list)
    p = None if deep else prompts
    outs = []
    for s, stage in enumerate(body.layers):
        if s > 0:
            x, p = reference_merge(stage.downsample, x, p)
        if deep:
            p = prompts[s]
        for block in stage.blocks:
            x, p = reference_block(block, x, p)
        outs.append(model.out_norm(s)(x).permute(0, 3, 1, 2))
    return outs


def timm_stage_maps(model: PromptedSwin, images):
    maps = model.body.forward_intermediates(images, norm=False, intermediates_only=True)
    return [model.out_norm(s)(m.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) for s, m in enumerate(maps)]


def _prompts(model, kind, batch=2):
    if kind is None:
        return None
    if kind == "shallow":
        return torch.randn(batch, 5, model.embed_dim)
    return [torch.randn(batch, 3, d) for d in model.dims]


@pytest.mark.parametrize("prompts", [None, "shallow", "deep"])
@pytest.mark.parametrize("size", [(28, 44), (44, 28), (30, 45), (52, 76)])
def test_tiny_swin_equals_the_reference_at_sizes_off_the_window_grid(size, prompts):
    model = PromptedSwin(**TINY_SWIN).eval()
    images = torch.randn(2, 3, *size)
    p = _prompts(model, prompts)
    with torch.no_grad():
        ours, ref = model(images, p), reference_forward(model, images, p)
    assert [o.shape[-2:] for o in ours] == [r.shape[-2:] for r in ref]
    assert ours[0].shape[-2:] == (math.ceil(size[0] / 4), math.ceil(size[1] / 4))
    for o, r in zip(ours, ref):
        assert (o - r).abs().max() < 1e-4


@pytest.mark.parametrize("prompts", [None, "shallow"])
def test_swin_tiny_configuration_equals_the_reference_at_120x200(prompts):
    # grids 30x50, 15x25, 8x13, 4x7 with window 7, shift 3: padding below, equal to and above the shift
    model = PromptedSwin("swin_tiny_patch4_window7_224").eval()
    images = torch.randn(1, 3, 120, 200)
    p = _prompts(model, prompts, batch=1)
    with torch.no_grad():
        ours, ref = model(images, p), reference_forward(model, images, p)
    assert [tuple(o.shape[-2:]) for o in ours] == [(30, 50), (15, 25), (8, 13), (4, 7)]
    for o, r in zip(ours, ref):
        assert (o - r).abs().max() < 1e-4


@pytest.mark.parametrize("config, grid", [(TINY_SWIN, (7, 11)), ({}, (9, 12))])
def test_the_last_columns_and_rows_never_reach_the_first_ones(config, grid):
    # padding (1 for window 4, 2 for window 7) smaller than the shift (2, 3): rolling before padding
    # would put the last column and the first one in the same shifted window region
    model = PromptedSwin(**config).eval() if config else PromptedSwin().eval()
    for stage, C in zip(model.body.layers, model.dims):
        for block in stage.blocks:
            x, p = torch.randn(1, *grid, C), torch.randn(1, 5, C)
            with torch.no_grad():
                base, _ = block_forward(block, x, p)
                for dim in (1, 2):
                    changed = x.clone()
                    changed.narrow(dim, grid[dim - 1] - 1, 1).normal_(0, 3)
                    out, _ = block_forward(block, changed, p)
                    assert (out - base).narrow(dim, 0, 1).abs().max() == 0
                    assert (out - base).narrow(dim, grid[dim - 1] - 1, 1).abs().max() > 1e-3


@pytest.mark.parametrize("size", [(64, 64), (128, 192)])  # grids 16..2, 32x48..4x6 (window 4)
def test_without_prompts_equals_timm_where_the_grids_are_multiples_of_the_window(size):
    model = PromptedSwin(**TINY_SWIN).eval()
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        for o, r in zip(model(images), timm_stage_maps(model, images)):
            assert o.shape == r.shape and (o - r).abs().max() < 1e-5


def test_timm_differs_from_the_original_swin_off_the_window_grid():
    # documents why we do not follow timm's roll-then-pad order (if timm changes, this tells us)
    model = PromptedSwin(**TINY_SWIN).eval()
    images = torch.randn(1, 3, 28, 44)
    with torch.no_grad():
        assert (model(images)[0] - timm_stage_maps(model, images)[0]).abs().max() > 1e-3


def test_an_image_off_the_patch_grid_equals_its_zero_padded_copy():
    model = PromptedSwin(**TINY_SWIN).eval()
    images, prompts = torch.randn(2, 3, 62, 63), torch.randn(2, 5, 32)
    with torch.no_grad():
        ours, padded = model(images, prompts), model(F.pad(images, (0, 1, 0, 2)), prompts)
    assert all(torch.equal(a, b) for a, b in zip(ours, padded))
