import pytest
import torch

from conftest import tiny_stpn
from stpn import STPN


def test_single_frame_mode_is_the_plain_backbone():
    model = tiny_stpn(prompting=False).eval()
    assert model.predictor is None
    frames = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = model(frames)
        ref = model.backbone.body.forward_intermediates(frames, norm=False, intermediates_only=True)
    for s, (o, r) in enumerate(zip(ours, ref)):
        r = model.backbone.out_norm(s)(r.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert (o - r).abs().max() < 1e-5


def test_shallow_stpn_uses_last_stage_support_tokens_and_embedding_width():
    model = tiny_stpn()
    assert model.support_stages == [3]
    assert model.predictor.reduction.in_features == 256 and model.predictor.reduction.out_features == 32


@pytest.mark.parametrize("depth", ["shallow", "deep", "deep_block"])
@pytest.mark.parametrize("backbone", ["swin_tiny_patch4_window7_224", "vit_tiny_patch16_224"])
def test_clip_alone_equals_clip_in_batch_of_three(depth, backbone):
    model = tiny_stpn(backbone=backbone, prompt_depth=depth).eval()
    frames, support = torch.randn(3, 3, 64, 64), torch.randn(3, 2, 3, 64, 64)
    with torch.no_grad():
        batch = model(frames, support)
        for i in range(3):
            for a, b in zip(model(frames[i:i + 1], support[i:i + 1]), batch):
                assert (a[0] - b[i]).abs().max() < 1e-5


@pytest.mark.parametrize("depth", ["shallow", "deep", "deep_block"])
@pytest.mark.parametrize("support_grad", [False, True])
def test_training_step_reaches_the_predictor(depth, support_grad):
    model = tiny_stpn(prompt_depth=depth, support_grad=support_grad).train()
    frames = torch.randn(2, 3, 64, 64)
    support = torch.randn(2, 2, 3, 64, 64, requires_grad=True)
    loss = sum(m.square().mean() for m in model(frames, support))
    loss.backward()
    predictor_grads = [p.grad for p in model.predictor.parameters()]
    assert all(g is not None for g in predictor_grads)
    assert sum(g.abs().sum() for g in predictor_grads) > 0
    if support_grad:
        assert support.grad is not None and support.grad.abs().sum() > 0
    else:
        assert support.grad is None  # nothing flows back through the support pass


def test_prompts_change_the_features():
    model = tiny_stpn().eval()
    frames = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = model(frames, torch.randn(1, 2, 3, 64, 64))
        b = model(frames, torch.randn(1, 2, 3, 64, 64))
    assert (a[0] - b[0]).abs().max() > 1e-4


def test_support_frames_may_differ_in_size_from_the_key_frame():
    model = tiny_stpn().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96), torch.randn(1, 3, 3, 32, 32))
    assert out[0].shape == (1, 32, 16, 24)


@pytest.mark.parametrize("predictor", ["attention", "topk_mean", "mixer", "decoder"])
def test_every_predictor_drives_stpn(predictor):
    model = tiny_stpn(predictor=predictor).eval()
    out = model(torch.randn(2, 3, 64, 64), torch.randn(2, 2, 3, 96, 96), torch.tensor([[-1, 1], [-2, 2]]))
    assert [o.shape[1] for o in out] == [32, 64, 128, 256]


def test_missing_or_mismatched_support_raises():
    model = tiny_stpn()
    frames = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match=r"needs support_frames of shape \(B, K, 3, H, W\)"):
        model(frames)
    with pytest.raises(ValueError, match=r"support_frames must have shape \(B=2, K, 3, H, W\), got \(1, 2, 3, 64, 64\)"):
        model(frames, torch.randn(1, 2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"support_frames must have shape \(B=2, K, 3, H, W\), got \(2, 3, 64, 64\)"):
        model(frames, torch.randn(2, 3, 64, 64))
    vit = tiny_stpn(backbone="vit_small_patch16_224")  # a ViT needs sides divisible by its patch; a Swin pads
    with pytest.raises(ValueError, match="support_frames height and width must be divisible by the patch size 16x16"):
        vit(frames, torch.randn(2, 1, 3, 64, 30))


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="depth must be one of"):
        STPN(prompt_depth="medium")
    with pytest.raises(ValueError, match="unknown timm model 'swin_huge'"):
        STPN(backbone="swin_huge")
    with pytest.raises(ValueError, match="not a supported backbone"):
        STPN(backbone="resnet18")
