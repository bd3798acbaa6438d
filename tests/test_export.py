"""ONNX export: each graph equals PyTorch; ONNX-Runtime models give the PyTorch models' outputs."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from conftest import assert_same_detections, tiny_config, tiny_stpn  # noqa: E402
from stpn.data.synth import SynthConfig, synth_video  # noqa: E402
from stpn.detection.build import build_detector  # noqa: E402
from stpn.detection.inference import predict_video
from stpn.export import OnnxDetector, OnnxSTPN, OnnxTracker, _session, export_onnx, read_manifest  # noqa: E402
from stpn.tracking.model import STPNTracker  # noqa: E402
from stpn.tracking.tracker import Tracker, start, step  # noqa: E402


def run(session, **feeds):
    return session.run(None, {k: v.numpy() for k, v in feeds.items()})


def close(onnx_out, torch_out, tol=1e-4):
    for a, b in zip(onnx_out, torch_out):
        b = b.detach().numpy()
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max())


@pytest.mark.parametrize("depth", ["shallow", "deep"])
def test_backbone_graphs_equal_pytorch(tmp_path, depth):
    model = tiny_stpn(prompt_depth=depth).eval()
    export_onnx(model, tmp_path, size=(72, 100), num_support=3)  # not a multiple of the window: padding
    m = read_manifest(tmp_path)
    assert m["graphs"] == ["embed.onnx", "predictor.onnx", "prompted.onnx"] and m["size"] == [72, 100]
    frames = torch.randn(5, 3, 72, 100)  # the embedding graph takes any number of frames
    with torch.no_grad():
        tokens, grids = model.encode_support(frames[None, :3])
        prompts = model.predict_prompts(tokens, grids)
        maps = model.backbone(frames[3:4], prompts)
        tokens5, _ = model.encode_support(frames[None])
    embedded = run(_session(tmp_path / "embed.onnx"), frames=frames)
    close(embedded, [tokens5[s][0] for s in model.support_stages])
    flat = [prompts] if depth == "shallow" else prompts
    feeds = {f"tokens_{s}": tokens[s] for s in model.support_stages}
    close(run(_session(tmp_path / "predictor.onnx"), **feeds), flat)
    close(run(_session(tmp_path / "prompted.onnx"), frame=frames[3:4], **dict(zip(m["support"]["prompts"], flat))), maps)
    # the runtime wrapper SupportStream calls gives the same prompts
    onnx_stpn = OnnxSTPN(tmp_path)
    t, g = onnx_stpn.encode_support(frames[None, :3])
    assert g == grids
    close([p.numpy() for p in ([onnx_stpn.predict_prompts(t)] if depth == "shallow" else onnx_stpn.predict_prompts(t))],
          flat)
    with pytest.raises(ValueError, match="exported for K=3"):
        onnx_stpn.predict_prompts({s: v[:, :2] for s, v in t.items()})


def test_baseline_backbone_exports_only_the_plain_pass(tmp_path):
    model = tiny_stpn(prompting=False).eval()
    export_onnx(model, tmp_path, size=(64, 64))
    assert read_manifest(tmp_path)["graphs"] == ["prompted.onnx"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        close(run(_session(tmp_path / "prompted.onnx"), frame=x), model.backbone(x))


def test_decoder_predictor_graph_takes_the_offsets(tmp_path):
    model = tiny_stpn(predictor="decoder").eval()
    export_onnx(model, tmp_path, size=(64, 64), num_support=2)
    frames = torch.randn(1, 2, 3, 64, 64)
    offsets = torch.tensor([[-4, -1]])
    with torch.no_grad():
        tokens, grids = model.encode_support(frames)
        ref = model.predict_prompts(tokens, grids, offsets)
        unknown = model.predict_prompts(tokens, grids)  # offsets 0
    onnx_stpn = OnnxSTPN(tmp_path)
    close([onnx_stpn.predict_prompts(tokens, grids, offsets).numpy()], [ref])
    close([onnx_stpn.predict_prompts(tokens, grids).numpy()], [unknown])
    assert not torch.allclose(ref, unknown)  # the offsets matter


@pytest.mark.parametrize("prompting", [True, False])
def test_onnx_detector_gives_the_detectors_detections(tmp_path, prompting):
    cfg = tiny_config(tmp_path, f"model.prompting={str(prompting).lower()}")
    det = build_detector(cfg).eval()
    det.roi_heads.score_thresh = 0.0  # random weights: keep every detection
    video, _, _ = synth_video(SynthConfig(videos=1, frames=5, width=96, height=64), 0)
    export_onnx(det, tmp_path / "onnx", size=(64, 96), num_support=2)
    onnx_det = OnnxDetector(tmp_path / "onnx")
    for mode in ("global", "local"):
        ref = list(predict_video(det, video, mode, 2, 1, 1))
        got = list(onnx_det.predict_video(video, mode, 2, 1, 1))
        assert sum(len(r["boxes"]) for r in ref) > 0
        for r, g in zip(ref, got):
            assert_same_detections(g, r, box_atol=1e-3, score_atol=1e-4, top_k=det.roi_heads.detections_per_img)
        if not prompting:
            break
    small, _, _ = synth_video(SynthConfig(videos=1, frames=2, width=64, height=64), 0)
    with pytest.raises(ValueError, match="frame 0 is 64x64.*96x64"):
        list(onnx_det.predict_video(small, "global", 2))


@pytest.mark.parametrize("prompting,predictor", [(True, "attention"), (True, "decoder"), (False, "attention")])
def test_onnx_tracker_tracks_like_the_pytorch_tracker(tmp_path, prompting, predictor):
    """Search supports (the target supports' export: test_tracking_supports.py)."""
    kw = dict(predictor_kwargs=dict(num_groups=4)) if predictor == "attention" else {}
    model = STPNTracker("vit_tiny_patch16_224", prompting=prompting, predictor=predictor, template_size=32, supports="search",
                        search_size=64, head_channels=8, backbone_kwargs=dict(embed_dim=32, depth=2, num_heads=2),
                        **kw).eval()
    export_onnx(model, tmp_path, num_support=2)
    onnx_model = OnnxTracker(tmp_path)
    template, search, support = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 64, 64), torch.rand(1, 2, 3, 64, 64)
    with torch.no_grad():
        tokens = model.embed_template(template)
        prompts = model.prompts(support) if prompting else None
        ref = model.head_forward(tokens, search, prompts)
    close([onnx_model.embed_template(template).numpy()], [tokens])
    got = onnx_model.head_forward(tokens, search, onnx_model.stpn.predict_prompts(
        onnx_model.stpn.encode_support(support)[0]) if prompting else None)
    close([got[k].numpy() for k in ("score", "size", "offset")], [ref[k] for k in ("score", "size", "offset")])
    # whole sequences: the box feeds the next crop, so float noise may grow a little over frames
    video, _, _ = synth_video(SynthConfig(videos=1, frames=10, width=160, height=120, max_objects=1), 1)
    x1, y1, x2, y2 = video.targets[0].boxes[0]
    boxes = {}
    for name, m in (("torch", model), ("onnx", onnx_model)):
        state = start(m, video.frames[0], [x1, y1, x2 - x1, y2 - y1], 2, 2, 2)
        boxes[name] = np.stack([step(m, video.frames[t], state)[0] for t in range(1, len(video))])
    np.testing.assert_allclose(boxes["onnx"], boxes["torch"], atol=0.1)
    # the GOT-10k toolkit's interface: the same tracker object drives either
    trackers = Tracker(model, 2, 2, 2), Tracker(onnx_model, 2, 2, 2)
    for tracker in trackers:
        tracker.init(video.frames[0], [x1, y1, x2 - x1, y2 - y1])
    for t in range(1, len(video)):
        a, b = (tracker.update(video.frames[t]) for tracker in trackers)
        np.testing.assert_allclose(b, a, atol=0.1)


def test_export_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="export.json"):
        OnnxTracker(tmp_path)
    with pytest.raises(ValueError, match="frame size"):
        export_onnx(tiny_stpn(), tmp_path, size=None)
    with pytest.raises(ValueError, match="deep_block"):
        export_onnx(tiny_stpn(prompt_depth="deep_block"), tmp_path, size=(64, 64))
    export_onnx(tiny_stpn(prompting=False), tmp_path / "bb", size=(64, 64))
    with pytest.raises(ValueError, match="not a tracker"):
        OnnxTracker(tmp_path / "bb")
    (tmp_path / "bb" / "export.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="stpn-onnx/1"):
        read_manifest(tmp_path / "bb")


def test_export_command_writes_a_detector_that_detects_like_the_run(tmp_path, capsys):
    from stpn.cli import main
    from stpn.detection.build import load_detector
    from stpn.detection.task import DetectionTask
    from stpn.engine.trainer import train
    cfg = tiny_config(tmp_path)
    out = train(cfg, DetectionTask(), max_iterations=1)
    assert main(["export", "--weights", str(out), "--out", str(tmp_path / "onnx")]) == 2
    assert "--size WxH" in capsys.readouterr().err
    assert main(["export", "--weights", str(out), "--out", str(tmp_path / "onnx"), "--size", "96x64"]) == 0
    manifest = read_manifest(tmp_path / "onnx")
    assert manifest["size"] == [64, 96] and manifest["support"]["num_support"] == cfg.data.test_num_support
    det, _ = load_detector(out)
    video, _, _ = synth_video(SynthConfig(videos=1, frames=4, width=96, height=64, seed=3), 0)
    K = cfg.data.test_num_support
    ref = list(predict_video(det, video, "global", K))
    got = list(OnnxDetector(tmp_path / "onnx").predict_video(video, "global", K))
    assert len(got) == 4 and sum(len(r["boxes"]) for r in ref) > 0
    for r, g in zip(ref, got):
        assert_same_detections(g, r, box_atol=1e-3, score_atol=1e-4)
    assert main(["export", "--weights", str(out), "--out", str(tmp_path / "bb"), "--size", "96x64",
                 "--part", "backbone"]) == 0
    assert read_manifest(tmp_path / "bb")["graphs"] == ["embed.onnx", "predictor.onnx", "prompted.onnx"]
