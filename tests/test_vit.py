import pytest
import torch

from conftest import TINY_VIT
from stpn.core.vit import PromptedViT


@pytest.mark.parametrize("extra", [{}, {"reg_tokens": 2}, {"class_token": False, "global_pool": "avg"}])
def test_without_prompts_equals_timm_vit(extra):
    model = PromptedViT("vit_tiny_patch16_224", **TINY_VIT, **extra).eval()
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ours = model(images)
        ref = model.body.forward_intermediates(images, indices=list(model.out_indices), norm=True,
                                               intermediates_only=True)
    assert len(ours) == 4 and ours[0].shape == (2, 32, 4, 6)
    for o, r in zip(ours, ref):
        assert (o - r).abs().max() < 1e-5


def test_prompts_follow_prefix_tokens_and_are_removed():
    model = PromptedViT("vit_tiny_patch16_224", **TINY_VIT, reg_tokens=1).eval()
    images, prompts = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 32)
    tokens = model.embed(images)
    with torch.no_grad():
        out = model.forward_tokens(tokens, prompts)
        # the same computation by hand: [cls, reg, prompts, patches] through timm's blocks
        x = torch.cat([tokens[:, :2], prompts, tokens[:, 2:]], dim=1)
        for blk in model.body.blocks:
            x = blk(x)
        ref = model.body.norm(torch.cat([x[:, :2], x[:, 5:]], dim=1))
    assert out[-1].shape == (1, 2 + 16, 32)
    assert (out[-1] - ref).abs().max() < 1e-5


def test_vit_sample_alone_equals_sample_in_batch():
    model = PromptedViT("vit_tiny_patch16_224", **TINY_VIT).eval()
    images, prompts = torch.randn(3, 3, 64, 64), torch.randn(3, 5, 32)
    with torch.no_grad():
        batch = model(images, prompts)
        for i in range(3):
            for a, b in zip(model(images[i:i + 1], prompts[i:i + 1]), batch):
                assert (a[0] - b[i]).abs().max() < 1e-5


def test_vit_deep_prompts_enter_and_leave_each_stage():
    model = PromptedViT("vit_tiny_patch16_224", **TINY_VIT).eval()
    images = torch.randn(1, 3, 64, 64)
    deep = [torch.randn(1, 2, 32) for _ in range(4)]
    with torch.no_grad():
        out = model(images, deep)
        # stage 0 by hand: prompts inserted before block 0, removed after it
        x = model.embed(images)
        x = torch.cat([x[:, :1], deep[0], x[:, 1:]], dim=1)
        x = model.body.blocks[0](x)
        ref0 = model.body.norm(torch.cat([x[:, :1], x[:, 3:]], dim=1))[:, 1:]
    assert (out[0].flatten(2).transpose(1, 2) - ref0).abs().max() < 1e-5


def test_vit_prompts_of_wrong_width_raise():
    model = PromptedViT("vit_tiny_patch16_224", **TINY_VIT)
    with pytest.raises(ValueError, match=r"prompts must have shape \(B=1, P, D=32\), got \(1, 5, 16\)"):
        model(torch.randn(1, 3, 64, 64), torch.randn(1, 5, 16))
    with pytest.raises(ValueError, match="divisible by the patch size 16x16"):
        model(torch.randn(1, 3, 64, 60))
