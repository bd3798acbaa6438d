import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_SWIN
from stpn.core.swin import PromptedSwin, widen_prompts, window_attention


def timm_stage_maps(model: PromptedSwin, images):
    """timm's own forward, followed by our per-stage output norms."""
    maps = model.body.forward_intermediates(images, norm=False, intermediates_only=True)
    return [model.out_norm(s)(m.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) for s, m in enumerate(maps)]


@pytest.mark.parametrize("size", [(64, 64), (64, 128)])  # grids multiples of the window: timm is right
def test_without_prompts_equals_timm_swin(size):
    model = PromptedSwin(**TINY_SWIN).eval()
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        ours, ref = model(images), timm_stage_maps(model, images)
    assert [o.shape[1] for o in ours] == [32, 64, 128, 256]
    for o, r in zip(ours, ref):
        assert o.shape == r.shape
        assert (o - r).abs().max() < 1e-5


def test_swin_tiny_configuration_equals_timm():
    model = PromptedSwin("swin_tiny_patch4_window7_224").eval()
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours, ref = model(images), timm_stage_maps(model, images)
    assert [o.shape[1:] for o in ours] == [(96, 56, 56), (192, 28, 28), (384, 14, 14), (768, 7, 7)]
    for o, r in zip(ours, ref):
        assert (o - r).abs().max() < 1e-5


def test_sample_alone_equals_sample_in_batch_of_three():
    model = PromptedSwin(**TINY_SWIN).eval()
    images, prompts = torch.randn(3, 3, 64, 96), torch.randn(3, 5, 32)
    with torch.no_grad():
        batch = model(images, prompts)
        for i in range(3):
            alone = model(images[i:i + 1], prompts[i:i + 1])
            for a, b in zip(alone, batch):
                assert (a[0] - b[i]).abs().max() < 1e-5


def test_prompt_change_in_image0_never_changes_image1():
    model = PromptedSwin(**TINY_SWIN).eval()
    images, prompts = torch.randn(2, 3, 64, 64), torch.randn(2, 5, 32)
    changed = prompts.clone()
    changed[0] = torch.randn(5, 32) * 3  # (a constant shift would vanish in LayerNorm)
    with torch.no_grad():
        before, after = model(images, prompts), model(images, changed)
    for b, a in zip(before, after):
        assert (b[1] - a[1]).abs().max() == 0
        assert (b[0] - a[0]).abs().max() > 1e-3  # the prompts do act on image 0


def naive_window_attention(attn, windows, prompts, mask):
    """Reference: copy each image's prompts into every window, attend, average prompt outputs."""
    B, nW, A, C = windows.shape
    P, heads = prompts.shape[1], attn.num_heads
    bias = F.pad(attn._get_rel_pos_bias()[0], (P, 0, P, 0))  # heads, N, N
    out_x, out_p = torch.empty(B, nW, A, C), torch.zeros(B, P, C)
    for b in range(B):
        for w in range(nW):
            tokens = torch.cat([prompts[b], windows[b, w]])  # N, C
            q, k, v = attn.qkv(tokens).reshape(P + A, 3, heads, -1).permute(1, 2, 0, 3)
            logits = q @ k.transpose(-1, -2) * attn.scale + bias
            if mask is not None:
                logits = logits + F.pad(mask[w], (P, 0, P, 0))
            out = attn.proj((logits.softmax(-1) @ v).transpose(0, 1).reshape(P + A, -1))
            out_x[b, w], out_p[b] = out[P:], out_p[b] + out[:P] / nW
    return out_x, out_p


@pytest.mark.parametrize("shifted", [False, True])
def test_once_per_image_prompt_qkv_equals_naive_per_window(shifted):
    model = PromptedSwin(**TINY_SWIN).eval()
    block = model.body.layers[0].blocks[1 if shifted else 0]
    attn = block.attn
    windows, prompts = torch.randn(2, 6, 16, 32), torch.randn(2, 5, 32)
    padded = torch.zeros(1, 8, 12, 32)  # 2 x 3 windows of 4 x 4
    mask = block.get_attn_mask(padded) if shifted else None
    if shifted:
        assert mask.shape == (6, 16, 16) and (mask != 0).any()
    with torch.no_grad():
        fast_x, fast_p = window_attention(attn, windows, prompts, mask)
        ref_x, ref_p = naive_window_attention(attn, windows, prompts, mask)
    assert (fast_x - ref_x).abs().max() < 1e-5
    assert (fast_p - ref_p).abs().max() < 1e-5


def test_widening_matches_the_merge_channel_layout():
    model = PromptedSwin(**TINY_SWIN)
    merge = model.body.layers[1].downsample
    p = torch.randn(1, 1, 32)
    # a 2x2 neighbourhood whose four tokens are all p: the merge lays them out as widen(p)
    neighbourhood = p.view(1, 1, 1, 32).expand(1, 2, 2, 32)
    with torch.no_grad():
        merged = merge(neighbourhood)[0, 0, 0]
        widened = merge.reduction(merge.norm(widen_prompts(p)))[0, 0]
    assert torch.allclose(merged, widened, atol=1e-6)


def test_legacy_widening_hand_worked():
    a, b, c, d = 1.0, 2.0, 3.0, 4.0
    p = torch.tensor([[[a, b, c, d]]])
    assert widen_prompts(p).flatten().tolist() == [a, b, c, d] * 4
    assert widen_prompts(p, legacy=True).flatten().tolist() == [a] * 4 + [c] * 4 + [b] * 4 + [d] * 4


def test_legacy_widening_is_released_concat_in_unfold_order():
    C = 6
    x = torch.randn(1, C, 2, 2)
    unfold = F.unfold(x, kernel_size=2, stride=2)[0, :, 0]  # mmcv layout: channel-major
    timm = x.permute(0, 2, 3, 1).reshape(1, 1, 2, 1, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)[0, 0, 0]
    perm = torch.tensor([int((unfold == v).nonzero()) for v in timm])  # timm index -> unfold index
    p = torch.randn(1, 1, C)
    released = torch.cat([p, p, p, p], dim=-1)[0, 0]  # released concat, read in unfold order
    assert torch.equal(widen_prompts(p, legacy=True)[0, 0], released[perm])


def test_legacy_merge_changes_prompted_features_only():
    model = PromptedSwin(**TINY_SWIN).eval()
    legacy = PromptedSwin(**TINY_SWIN, legacy_merge=True).eval()
    legacy.load_state_dict(model.state_dict())
    images, prompts = torch.randn(1, 3, 64, 64), torch.randn(1, 5, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(images), legacy(images)))
        assert (model(images, prompts)[-1] - legacy(images, prompts)[-1]).abs().max() > 1e-4


def test_deep_prompts_per_stage_and_per_block():
    model = PromptedSwin(**TINY_SWIN).eval()
    images = torch.randn(2, 3, 64, 64)
    per_stage = [torch.randn(2, 3, d) for d in model.dims]
    per_block = [[torch.randn(2, 3, d) for _ in range(n)] for d, n in zip(model.dims, model.depths)]
    with torch.no_grad():
        plain = model(images)
        for prompts in (per_stage, per_block):
            out = model(images, prompts)
            assert [o.shape for o in out] == [o.shape for o in plain]
            assert all((o - q).abs().max() > 1e-4 for o, q in zip(out, plain))
            # the first stage's prompts never reach the first stage of another image
            alone = model(images[:1], [p[:1] for p in prompts] if prompts is per_stage
                          else [[p[:1] for p in s] for s in prompts])
            assert all((a[0] - o[0]).abs().max() < 1e-5 for a, o in zip(alone, out))


@pytest.mark.parametrize("bad, message", [
    (torch.randn(3, 64, 64), r"\(B, 3, H, W\)"),
    (torch.randn(1, 4, 64, 64), r"\(B, 3, H, W\)"),
])
def test_bad_images_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        PromptedSwin(**TINY_SWIN)(bad)


def test_prompts_of_wrong_width_raise():
    model = PromptedSwin(**TINY_SWIN)
    with pytest.raises(ValueError, match=r"prompts must have shape \(B=1, P, D=32\), got \(1, 5, 96\)"):
        model(torch.randn(1, 3, 64, 64), torch.randn(1, 5, 96))
    with pytest.raises(ValueError, match=r"prompts\[1\] must have shape \(B=1, P, D=64\)"):
        model(torch.randn(1, 3, 64, 64), [torch.randn(1, 5, d) for d in (32, 32, 128, 256)])
