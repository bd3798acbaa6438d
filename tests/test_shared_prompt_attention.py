"""Prompted window attention without copying the prompts into the windows equals the
concatenation formula (the released code's: each window attends over [P prompt keys, its A keys],
each prompt query over the same per window, then averaged over the windows). The reference lives
here, written from that formula in plain tensor algebra, not in src."""
import pytest
import torch
from timm.models.swin_transformer import SwinTransformerBlock

import stpn.core.swin as swin
from conftest import TINY_SWIN
from stpn.core.swin import PromptedSwin, block_forward


def reference_window_attention(attn, windows, prompts, mask):
    """The concatenation formula, spelled out: (B, nW, A, C), (B, P, C), (nW, A, A) or None."""
    B, nW, A, C = windows.shape
    h, P = attn.num_heads, prompts.shape[1]
    d = C // h
    tokens = torch.cat([prompts.unsqueeze(1).expand(-1, nW, -1, -1), windows], dim=2)  # B,nW,P+A,C
    q, k, v = attn.qkv(tokens).reshape(B, nW, P + A, 3, h, d).permute(3, 0, 1, 4, 2, 5)  # B,nW,h,P+A,d
    logits = (q @ k.transpose(-1, -2)) * d ** -0.5
    bias = attn._get_rel_pos_bias()[0]  # h,A,A
    full = torch.zeros(nW, h, P + A, P + A)
    full[:, :, P:, P:] = bias + (0 if mask is None else mask.unsqueeze(1))  # zero on prompt rows/columns
    out = (logits + full).softmax(-1) @ v  # B,nW,h,P+A,d
    out = attn.proj(out.transpose(2, 3).reshape(B, nW, P + A, C))
    return out[:, :, P:], out[:, :, :P].mean(1)


def _block(dim=96, heads=3, window=7, shift=0, grid=(56, 56)):
    torch.manual_seed(1)
    block = SwinTransformerBlock(dim, grid, num_heads=heads, window_size=window, shift_size=shift,
                                 always_partition=True, dynamic_mask=True)
    with torch.no_grad():  # a non-zero relative-position table, as in trained weights
        block.attn.relative_position_bias_table.normal_(0, 0.5)
    return block


def _run(block, x, p, reference: bool, monkeypatch):
    if reference:
        monkeypatch.setattr(swin, "window_attention", reference_window_attention)
    try:
        return block_forward(block, x, p)
    finally:
        monkeypatch.undo()


GRIDS = {  # Swin-T stage-1 grids of the real input sizes (stride 4) and a grid that needs padding
    "224": (56, 56), "224x320": (56, 80), "576x1008": (144, 252), "padded 30x45": (30, 45)}


@pytest.mark.parametrize("shift", [0, 3], ids=["unshifted", "shifted"])
@pytest.mark.parametrize("grid", list(GRIDS.values()), ids=list(GRIDS))
def test_inference_equals_the_concatenation_formula(grid, shift, monkeypatch):
    block = _block(shift=shift, grid=grid).eval()
    x, p = torch.randn(2, *grid, 96), torch.randn(2, 5, 96)
    with torch.no_grad():
        want = _run(block, x, p, True, monkeypatch)
        for path in ("auto", "split", "logits", "concat"):
            monkeypatch.setattr(swin, "PROMPT_ATTENTION", path)
            assert swin._shared_prompt_path(x, 0.0) == ("concat" if path == "auto" else path)
            got = block_forward(block, x, p)
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, rtol=0, atol=1e-5)


@pytest.mark.parametrize("path", ["logits", "concat", "split"])
@pytest.mark.parametrize("shift", [0, 3], ids=["unshifted", "shifted"])
@pytest.mark.parametrize("grid", [(56, 80), (30, 45)], ids=["224x320", "padded 30x45"])
def test_training_values_and_gradients_equal_the_concatenation_formula(grid, shift, path, monkeypatch):
    block = _block(shift=shift, grid=grid).train()
    x, p = torch.randn(2, *grid, 96), torch.randn(2, 5, 96)
    results = []
    for reference in (False, True):
        block.zero_grad()
        xi, pi = x.clone().requires_grad_(True), p.clone().requires_grad_(True)
        if not reference:
            monkeypatch.setattr(swin, "PROMPT_ATTENTION", path)
            # "split" needs no gradient through its kernel: training runs "logits" instead
            assert swin._shared_prompt_path(xi, 0.0) == ("logits" if path == "split" else path)
        out_x, out_p = _run(block, xi, pi, reference, monkeypatch)
        (out_x.square().mean() + out_p.sin().sum()).backward()
        results.append([out_x, out_p, xi.grad, pi.grad] + [t.grad.clone() for t in block.parameters()])
    for g, w in zip(*results):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-5)


def test_the_split_path_equals_the_logits_path_on_every_window_and_prompt(monkeypatch):
    block = _block(dim=32, heads=2, window=4, shift=2, grid=(10, 14)).eval()
    x, p = torch.randn(3, 10, 14, 32), torch.randn(3, 4, 32)
    outs = {}
    with torch.no_grad():
        for path in ("split", "logits", "concat"):
            monkeypatch.setattr(swin, "_shared_prompt_path", lambda q, dropout, path=path: path)
            outs[path] = block_forward(block, x, p)
    for path in ("logits", "concat"):
        for g, w in zip(outs["split"], outs[path]):
            torch.testing.assert_close(g, w, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [(64, 64), (72, 100)])
def test_whole_prompted_swin_equals_the_concatenation_formula(size, monkeypatch):
    model = PromptedSwin(**TINY_SWIN).eval()
    images, prompts = torch.randn(2, 3, *size), torch.randn(2, 5, 32)
    with torch.no_grad():
        got = model(images, prompts)
        monkeypatch.setattr(swin, "window_attention", reference_window_attention)
        want = model(images, prompts)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-5)


def test_attention_dropout_keeps_the_concatenation_layout(monkeypatch):
    q = torch.zeros(1, 1, 1, 1, 8)
    monkeypatch.setattr(swin, "PROMPT_ATTENTION", "split")
    assert swin._shared_prompt_path(q, 0.1) == "concat"
    assert swin._shared_prompt_path(q, 0.0) == "split"
