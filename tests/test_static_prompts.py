"""Static prompts (VPT, the paper's static-vs-dynamic control): learned tokens that ignore the
supports, through the same prompt path as STPN."""
import math

import pytest
import torch

from conftest import TINY_SWIN, tiny_config, tiny_stpn
from stpn.detection.task import DetectionTask
from stpn.engine.trainer import train


def test_static_prompts_ignore_the_supports_and_skip_the_support_pass(monkeypatch):
    model = tiny_stpn(predictor="static").eval()
    frames, calls = torch.randn(2, 3, 64, 64), []
    real = model.backbone.forward
    monkeypatch.setattr(model.backbone, "forward", lambda x, *a, **k: calls.append(x.shape[0]) or real(x, *a, **k))
    with torch.no_grad():
        a = model(frames, torch.randn(2, 3, 3, 64, 64))
        b = model(frames, torch.zeros(2, 1, 3, 64, 64))
        direct = real(frames, model.predictor.prompts.expand(2, -1, -1))
    assert calls == [2, 2]  # only the prompted passes: no support frame was embedded
    for x, y, z in zip(a, b, direct):
        assert torch.equal(x, y) and torch.equal(x, z)


def test_static_prompts_start_in_vpts_uniform_range_and_learn():
    model = tiny_stpn(predictor="static")
    bound = math.sqrt(6 / (3 * 16 + TINY_SWIN["embed_dim"]))
    p = model.predictor.prompts
    assert p.shape == (5, 32) and p.abs().max() <= bound and p.abs().max() > bound / 2
    out = model(torch.randn(1, 3, 64, 64), torch.randn(1, 2, 3, 64, 64))
    sum(o.mean() for o in out).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0


def test_deep_static_prompts_are_fresh_per_block_at_the_stage_width():
    model = tiny_stpn(predictor="static", prompt_depth="deep_block").eval()
    widths = [[pred.prompts.shape for pred in stage] for stage in model.predictor]
    assert widths == [[(5, 32)] * 2, [(5, 64)] * 2, [(5, 128)] * 2, [(5, 256)] * 2]
    frames = torch.randn(3, 3, 64, 64)
    with torch.no_grad():  # a sample alone equals the same sample in a batch
        batch = model(frames, torch.randn(3, 2, 3, 64, 64))
        alone = model(frames[1:2], torch.randn(1, 2, 3, 64, 64))
    for b, a in zip(batch, alone):
        torch.testing.assert_close(b[1:2], a, rtol=0, atol=1e-5)


@pytest.mark.parametrize("depth", ["shallow", "deep_block"])
def test_a_detector_with_static_prompts_trains_from_its_config(tmp_path, depth):
    cfg = tiny_config(tmp_path, "model.predictor=static", "model.predictor_kwargs={}", f"model.prompt_depth={depth}")
    out = train(cfg, DetectionTask(), max_iterations=2)
    model, loaded = DetectionTask().load(out)
    assert loaded.model.predictor == "static" and not model.stpn.reads_support


def test_exporting_static_prompts_is_refused_with_a_reason(tmp_path):
    from stpn.export import export_onnx
    with pytest.raises(ValueError, match="static prompts .* cannot be exported yet"):
        export_onnx(tiny_stpn(predictor="static").eval(), tmp_path / "onnx", size=(64, 64))
    assert not (tmp_path / "onnx").exists()
