"""The tracking pipeline: crops, model equivalences, the tracking loop, training, toolkit, CLI."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stpn.cli import main
from stpn.engine.config import load_config, packaged_config
from stpn.engine.trainer import train
from stpn.tracking.model import STPNTracker, crop, crop_region, decode, from_crop, to_crop, tracking_loss
from stpn.tracking.task import TrackingTask
from stpn.tracking.tracker import Tracker, sanitize, start, step

TINY = [
    "model.backbone_kwargs={embed_dim: 32, depth: 2, num_heads: 2, patch_size: 8}",
    "tracking.head_channels=8", "tracking.template_size=32", "tracking.search_size=64",
    "data.synth={train_videos: 3, val_videos: 2, frames: 8, width: 96, height: 64, classes: 2, max_objects: 2, deteriorated: 0.4}",
    "tracking.samples_per_video=2", "optim.batch_size=2", "optim.epochs=1", "optim.warmup_iters=1",
    "run.checkpoint_every=2", "run.log_every=1",
]


def tiny_config(tmp_path, *extra):
    return load_config(packaged_config("sot_demo_cpu"),
                       TINY + [f"data.root={tmp_path / 'data'}", f"run.out={tmp_path / 'run'}", *extra])


def tiny_tracker(prompting=True, **kw):
    """A tiny tracker; ``supports="search"`` unless given (the target supports' tests are in
    test_tracking_supports.py)."""
    kw = {"prompt_depth": "deep", "template_size": 32, "search_size": 64, "head_channels": 8, "supports": "search", **kw}
    return STPNTracker("vit_tiny_patch16_224", prompting=prompting, predictor_kwargs=dict(num_groups=4),
                       backbone_kwargs=dict(embed_dim=32, depth=2, num_heads=2, patch_size=8), **kw).eval()


def moving_square(n=8, W=96, H=64, side=16, vx=5.0, vy=2.0, x0=20.0, y0=20.0):
    """Frames with a textured square moving on a grey background; its true boxes (x, y, w, h)."""
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    frames, boxes = [], []
    for t in range(n):
        img = np.full((H, W, 3), 120, np.uint8)
        x, y = x0 + vx * t, y0 + vy * t
        xi, yi = int(round(x)), int(round(y))
        xs, ys = slice(max(0, xi), min(W, xi + side)), slice(max(0, yi), min(H, yi + side))
        if xs.start < xs.stop and ys.start < ys.stop:
            img[ys, xs] = patch[ys.start - yi:ys.stop - yi, xs.start - xi:xs.stop - xi]
        frames.append(img)
        boxes.append([xi, yi, side, side])
    return frames, np.array(boxes, dtype=np.float64)


# crops -----------------------------------------------------------------------------------------
def test_crop_resamples_the_region_exactly_and_pads_outside_with_zero():
    H, W = 40, 60
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    image = torch.stack([xs + 2 * ys, xs, ys])  # linear: bilinear sampling is exact
    out = crop(image, (10.0, 5.0, 16.0), 16)
    torch.testing.assert_close(out, image[:, 5:21, 10:26])
    half = crop(image, (10.0, 5.0, 16.0), 8)  # 2x2 bins: the bin centres
    torch.testing.assert_close(half[1, 0], torch.arange(8, dtype=torch.float32) * 2 + 10.5)
    outside = crop(image, (-40.0, -40.0, 16.0), 8)
    assert outside.abs().max() == 0


def test_crop_coordinates_round_trip():
    box = np.array([31.0, 12.5, 20.0, 9.0])
    region = crop_region(box, 4.0)
    assert region[2] == pytest.approx(4 * np.sqrt(20 * 9))
    c = to_crop(box, region)
    assert c[:2] == pytest.approx([0.5, 0.5])  # the crop is centred on the box
    np.testing.assert_allclose(from_crop(c, region), box)


def test_decode_reads_the_peak_cell():
    out = {"score": torch.full((1, 1, 4, 4), -5.0), "size": torch.full((1, 2, 4, 4), 0.25),
           "offset": torch.full((1, 2, 4, 4), 0.5)}
    out["score"][0, 0, 2, 1] = 3.0  # row 2, column 1
    boxes, scores = decode(out)
    torch.testing.assert_close(boxes[0], torch.tensor([1.5 / 4, 2.5 / 4, 0.25, 0.25]))
    assert scores[0] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())


def test_loss_is_small_for_a_perfect_prediction_and_large_for_a_wrong_one():
    boxes = torch.tensor([[0.5 + 0.125 / 2, 0.5 + 0.125 / 2, 0.3, 0.2]])  # centre of cell (4, 4) of 8x8
    good = {"score": torch.full((1, 1, 8, 8), -9.0), "size": torch.tensor([0.3, 0.2]).view(1, 2, 1, 1).expand(1, 2, 8, 8),
            "offset": torch.full((1, 2, 8, 8), 0.5)}
    good["score"][0, 0, 4, 4] = 9.0
    losses = tracking_loss(good, boxes)
    assert losses["l1"].item() == pytest.approx(0, abs=1e-6) and losses["giou"].item() == pytest.approx(0, abs=1e-5)
    assert losses["focal"].item() < 0.05
    bad = {k: v.clone() for k, v in good.items()}
    bad["size"] = torch.full((1, 2, 8, 8), 0.05)
    assert tracking_loss(bad, boxes)["giou"] > 0.5


# model equivalences ------------------------------------------------------------------------------
def test_no_prompts_equals_the_baseline_with_the_same_weights():
    stpn = tiny_tracker(True)
    base = tiny_tracker(False)
    missing, unexpected = base.load_state_dict(stpn.state_dict(), strict=False)
    assert not missing and all(k.startswith("stpn.predictor") for k in unexpected)
    z, x = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 64, 64)
    a = stpn.head_forward(stpn.embed_template(z), x, None)
    b = base(z, x)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    prompted = stpn(z, x, torch.randn(2, 2, 3, 64, 64), torch.tensor([[-2, -1], [-2, -1]]))
    assert not torch.allclose(prompted["score"], a["score"])  # the prompts do reach the head


def test_a_sample_alone_equals_the_same_sample_in_a_batch():
    model = tiny_tracker(True)
    z, x, s = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 64, 64), torch.randn(3, 2, 3, 64, 64)
    off = torch.tensor([[-2, -1]] * 3)
    batch = model(z, x, s, off)
    alone = model(z[1:2], x[1:2], s[1:2], off[1:2])
    for k in batch:
        torch.testing.assert_close(batch[k][1:2], alone[k], atol=1e-5, rtol=1e-4)


def test_the_tracker_needs_a_vit_and_patch_aligned_sizes():
    with pytest.raises(ValueError, match="ViT backbone"):
        STPNTracker("swin_tiny_patch4_window7_224", backbone_kwargs=dict(embed_dim=32, depths=(1, 1, 1, 1),
                                                                           num_heads=(1, 2, 4, 8), window_size=4))
    with pytest.raises(ValueError, match="search_size must be a multiple"):
        tiny_tracker(search_size=60)


# the tracking loop -------------------------------------------------------------------------------
@pytest.mark.parametrize("K,S,R", [(2, 1, 1), (2, 2, 1), (3, 2, 2)])
def test_streaming_equals_the_offline_computation_for_the_same_supports(K, S, R):
    """Each frame's box from the stream == model.forward on crops rebuilt from the boxes the
    stream produced, with the supports of its refresh frame."""
    from stpn.core.sampling import causal_support
    from stpn.tracking.model import to_tensor
    model = tiny_tracker(True)
    frames, gt = moving_square(9)
    state = start(model, frames[0], gt[0], K, S, R)
    boxes = [gt[0]]
    for t in range(1, len(frames)):
        box, _, state = step(model, frames[t], state)
        # offline
        r = (t // R) * R if t >= R else 1
        index = causal_support(r, r + 1, K, S)
        search_of = lambda tau: crop(to_tensor(frames[tau], model.mean, model.std),  # noqa: E731
                                     crop_region(boxes[tau - 1] if tau else gt[0], 4.0), 64)
        template = crop(to_tensor(frames[0], model.mean, model.std), crop_region(gt[0], 2.0), 32)
        support = torch.stack([search_of(tau) for tau in index])[None]
        region = crop_region(boxes[t - 1], 4.0)
        with torch.no_grad():
            out = model(template[None], search_of(t)[None], support, torch.tensor([[tau - r for tau in index]]))
        expected, _ = sanitize(from_crop(decode(out)[0][0].double().numpy(), region), boxes[t - 1], 96, 64)
        assert state.stream.support_index == index
        np.testing.assert_allclose(box, expected, rtol=1e-4, atol=1e-3)
        boxes.append(box)
    assert len(state.stream.cache) <= K  # memory stays O(K)


def test_a_target_leaving_the_image_never_gives_nan_or_a_box_outside():
    model = tiny_tracker(True)
    frames, gt = moving_square(14, vx=9.0, vy=0.0, x0=50.0)  # leaves on the right after ~5 frames
    tracker = Tracker(model, num_support=2, stride=1, refresh_every=1)
    tracker.init(frames[0], gt[0])
    for frame in frames[1:]:
        x, y, w, h = tracker.update(frame)
        assert np.isfinite([x, y, w, h]).all()
        assert 0 <= x and 0 <= y and x + w <= 96 + 1e-9 and y + h <= 64 + 1e-9 and w >= 2 and h >= 2


def test_sanitize_clips_and_falls_back_to_the_last_box():
    last = np.array([80.0, 50.0, 20.0, 20.0])
    box, ok = sanitize(np.array([90.0, 10.0, 20.0, 10.0]), last, 96, 64)
    assert ok and box.tolist() == [90.0, 10.0, 6.0, 10.0]
    box, ok = sanitize(np.array([np.nan, 1, 2, 3]), last, 96, 64)
    assert not ok and box.tolist() == [76.0, 44.0, 20.0, 20.0]  # moved inside the image
    box, ok = sanitize(np.array([200.0, 10.0, 20.0, 10.0]), last, 96, 64)  # entirely outside
    assert not ok and box.tolist() == [76.0, 44.0, 20.0, 20.0]
    box, ok = sanitize(np.array([10.0, 10.0, 0.0, 0.0]), last, 96, 64)  # shrank to nothing
    assert not ok


def test_bad_first_boxes_are_refused_with_clear_errors():
    model = tiny_tracker(True)
    frame = np.zeros((64, 96, 3), np.uint8)
    with pytest.raises(ValueError, match="zero size"):
        start(model, frame, [10, 10, 0, 5])
    with pytest.raises(ValueError, match="outside the first frame"):
        start(model, frame, [100, 10, 5, 5])
    with pytest.raises(ValueError, match="4 finite numbers"):
        start(model, frame, [1, 2, 3])
    state = start(model, frame, [10, 10, 8, 8])
    with pytest.raises(ValueError, match="frame 1 is 32x32"):
        step(model, np.zeros((32, 32, 3), np.uint8), state)


# training, evaluation, toolkit, CLI ----------------------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["model.prompting=false"], ["model.prompt_depth=shallow"]])
def test_one_training_step_updates_the_weights(tmp_path, extra):
    cfg = tiny_config(tmp_path, *extra)
    task = TrackingTask()
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in task.build_model(cfg).state_dict().items()}
    out = train(cfg, task, max_iterations=1)
    from safetensors.torch import load_file
    after = load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("head.") for k in moved) and any(k.startswith("stpn.backbone") for k in moved)
    if "model.prompting=false" not in extra:
        assert any(k.startswith("stpn.predictor") for k in moved)
    record = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert {"focal", "l1", "giou"} <= record.keys() and np.isfinite(record["loss"])


def test_tracking_training_resumes_exactly(tmp_path):
    from safetensors.torch import load_file
    straight = train(tiny_config(tmp_path / "a", "optim.epochs=2"), TrackingTask())
    cfg = tiny_config(tmp_path / "b", "optim.epochs=2")
    train(cfg, TrackingTask(), max_iterations=4)  # stops mid-epoch 2 (3 iterations per epoch)
    assert (Path(cfg.run.out) / "checkpoints" / "latest").read_text() == "iter_00000004"
    resumed = train(cfg, TrackingTask(), resume="auto")
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_pairs_are_reproducible_and_supports_come_before_the_search_frame(tmp_path):
    cfg = tiny_config(tmp_path)
    ds = TrackingTask().train_dataset(cfg)
    a, b = ds[3], ds[3]
    for k in a:
        assert torch.equal(a[k], b[k])
    assert (a["offsets"] < 0).all()
    T = cfg.tracking.sequence_length  # the demo's 3 consecutive search frames, 2 target supports of template size
    assert a["template"].shape == (3, 32, 32) and a["search"].shape == (T, 3, 64, 64)
    assert a["support"].shape == (T, 2, 3, 32, 32) and a["boxes"].shape == (T, 2, 4) and a["box"].shape == (T, 4)
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["search"], a["search"])


@pytest.mark.parametrize("jitter", ["shared", "independent"])
def test_support_crops_see_the_target_where_the_search_crop_does(tmp_path, monkeypatch, jitter):
    """At test time every crop is centred on the last prediction, so the target sits at the same
    place in the support crops as in the search crop; shared training jitter reproduces that."""
    from stpn.tracking import task as task_module
    cfg = tiny_config(tmp_path, "tracking.center_jitter=2.0", f"tracking.support_jitter={jitter}",
                      "tracking.supports=search", "tracking.sequence_length=1")
    ds = TrackingTask().train_dataset(cfg)
    calls = []
    real_crop, real_box = task_module.crop_frame, task_module._xywh
    monkeypatch.setattr(task_module, "crop_frame", lambda f, region, *a: calls.append(np.array(region)) or real_crop(f, region, *a))
    monkeypatch.setattr(task_module, "_xywh", lambda v, t: calls.append(real_box(v, t)) or real_box(v, t))
    spread = []
    for i in range(len(ds)):
        calls.clear()
        item = ds[i]
        boxes, regions = calls[0::2], calls[1::2]  # template, search, then each support: box, crop
        boxes = [boxes[0] if b is None else b for b in boxes]  # an absent target: the template's box
        where = [to_crop(b, r) for b, r in zip(boxes[1:], regions[1:])]
        assert np.allclose(where[0], item["box"][0].numpy(), atol=1e-6)  # the search crop's target, as trained on
        ratio = [r[2] / np.sqrt(b[2] * b[3]) for b, r in zip(boxes[1:], regions[1:])]
        spread.append(max(np.abs(w[:2] - where[0][:2]).max() for w in where[1:]) + np.ptp(ratio))
    if jitter == "shared":
        assert max(spread) < 1e-9
    else:
        assert min(spread) > 1e-3


def test_the_tracking_demo_pretrains_on_its_own_training_videos(tmp_path):
    from stpn.engine.config import config_dict
    from stpn.tracking.demo import demo_config, pretrain_config
    for seed in (0, 2):
        pre, run = pretrain_config(tmp_path, False, seed), demo_config(tmp_path, False, True, seed)
        assert run.model.weights == str(tmp_path / "pretrain" / "model.safetensors") and pre.run.out == str(tmp_path / "pretrain")
        assert pre.data.synth == run.data.synth and pre.data.train_split == run.data.train_split
        assert pre.data.format == "vid" and pre.data.root != run.data.root  # all objects, labelled, beside the GOT-10k copy
        for key in ("backbone", "backbone_kwargs", "mean", "std"):
            assert getattr(pre.model, key) == getattr(run.model, key), key
        assert config_dict(pre)["run"]["seed"] == config_dict(run)["run"]["seed"]
        assert pre.classification.num_classes == run.data.synth["classes"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sot")
    cfg = tiny_config(tmp)
    from stpn.data.splits import read_split
    read_split(cfg.data, "val")  # generated here, as stpn eval would
    return train(cfg, TrackingTask(), max_iterations=2), tmp


def test_the_official_got10k_toolkit_runs_our_tracker_and_agrees_with_our_evaluator(trained_run, tmp_path):
    import got10k.experiments as got10k  # a dev dependency: the official toolkit

    from stpn.data.got10k import read_got10k
    from stpn.evaluation.got10k import evaluate_got10k
    from stpn.tracking.build import load_tracker
    run, data = trained_run
    model, cfg = load_tracker(run)
    exp = got10k.ExperimentGOT10k(str(data / "data"), subset="val", result_dir=str(tmp_path / "results"),
                                  report_dir=str(tmp_path / "reports"))
    tracker = Tracker(model, cfg.data.test_num_support, cfg.data.test_stride, cfg.data.test_refresh_every)
    exp.run(tracker)
    performance = exp.report([tracker.name])[tracker.name]["overall"]
    ours = evaluate_got10k(read_got10k(data / "data", "val", progress=False), tmp_path / "results" / "GOT-10k" / tracker.name)
    assert ours["ao"] == pytest.approx(performance["ao"], abs=1e-6)
    assert ours["sr50"] == pytest.approx(performance["sr"], abs=1e-6)


def test_eval_writes_the_results_layout_with_measured_times(trained_run, tmp_path, capsys):
    run, data = trained_run
    assert main(["eval", "--weights", str(run / "model.safetensors"), "--out", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert 0 <= metrics["ao_all"] <= 1 and 0 <= metrics["ao_deteriorated"] <= 1 and metrics["fps"] > 0
    names = (data / "data" / "val" / "list.txt").read_text().split()
    for name in names:
        times = (tmp_path / "ev" / "results" / name / f"{name}_time.txt").read_text().split()
        assert len(times) == 8 and all(float(t) > 0 for t in times)
    assert (tmp_path / "ev" / "success.png").stat().st_size > 0
    assert "AO all" in capsys.readouterr().out


def test_track_command_on_a_video_file_writes_every_frame(trained_run, tmp_path):
    from stpn.data.video import open_video, write_video
    run, _ = trained_run
    frames, gt = moving_square(10)
    write_video(tmp_path / "in.mp4", iter(frames), fps=10)
    box = ",".join(str(v) for v in gt[0])
    assert main(["track", str(tmp_path / "in.mp4"), "--box", box, "--weights", str(run),
                 "--out", str(tmp_path / "out.mp4"), "--txt", str(tmp_path / "boxes.txt")]) == 0
    assert len(open_video(tmp_path / "out.mp4")) == 10
    lines = (tmp_path / "boxes.txt").read_text().splitlines()
    assert len(lines) == 10 and [float(v) for v in lines[0].split(",")] == pytest.approx(gt[0].tolist())


def test_track_command_bad_input(trained_run, tmp_path, capsys):
    run, _ = trained_run
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    assert main(["track", str(tmp_path / "broken.mp4"), "--box", "1,2,3,4", "--weights", str(run)]) == 2
    assert "broken.mp4" in capsys.readouterr().err
    from stpn.data.video import write_video
    frames, _ = moving_square(3)
    write_video(tmp_path / "in.mp4", iter(frames), fps=10)
    for box, message in [("1,2,3", "x,y,w,h"), ("10,10,0,4", "zero size"), ("500,10,4,4", "outside the first frame")]:
        assert main(["track", str(tmp_path / "in.mp4"), "--box", box, "--weights", str(run)]) == 2
        assert message in capsys.readouterr().err
    assert main(["track", str(tmp_path / "in.mp4"), "--box", "1,1,4,4", "--weights", str(tmp_path / "none.safetensors")]) == 2
    assert "weights file not found" in capsys.readouterr().err


def test_quick_sot_demo_writes_report_plot_and_video(tmp_path, monkeypatch):
    from stpn.tracking import demo
    real, real_pre = demo.demo_config, demo.pretrain_config
    monkeypatch.setattr(demo, "demo_config", lambda out, quick, prompting, seed=0: load_config(
        None, [f"{k}={v}" for k, v in _flat(real(out, quick, prompting, seed))] + TINY))
    # the same tiny ViT and data, as an object classifier
    monkeypatch.setattr(demo, "pretrain_config", lambda out, quick, seed=0: load_config(
        None, [f"{k}={v}" for k, v in _flat(real_pre(out, quick, seed))] + [o for o in TINY if o.startswith(("model.", "data."))] + ["classification.num_classes=2",
                                                                           "classification.crop_size=16", "optim.epochs=1"]))
    from stpn.demos.paired import run_paired_demo
    report = run_paired_demo("sot", tmp_path / "demo", quick=True)
    saved = json.loads((tmp_path / "demo" / "report.json").read_text())
    for name in ("stpn", "baseline"):
        for key in ("ao_all", "ao_deteriorated", "sr50_all"):
            assert 0 <= saved[name][key] <= 1
        assert saved[name]["ao_all"] == report[name]["ao_all"]
    assert saved["quick"] is True
    assert saved["pretrain"]["crops"] > 0 and (tmp_path / "demo" / "pretrain" / "model.safetensors").is_file()
    with pytest.raises(ValueError, match=r"holds a demo with other settings \(stpn demo --task sot --quick; this one: stpn demo --task sot\)"):
        run_paired_demo("sot", tmp_path / "demo", quick=False)
    assert (tmp_path / "demo" / "success.png").stat().st_size > 0
    from stpn.data.video import open_video
    assert len(open_video(tmp_path / "demo" / "stpn_val0.mp4")) == 8


def _flat(cfg):
    from stpn.engine.config import config_dict
    for section, values in config_dict(cfg).items():
        if isinstance(values, dict):
            for k, v in values.items():
                yield f"{section}.{k}", json.dumps(v)
        else:
            yield section, json.dumps(values)


def test_tracking_configs_load_and_a_wrong_format_is_named():
    from stpn.engine.config import ConfigError
    for name in ("sot_demo_cpu", "got10k_vit_b"):
        assert load_config(packaged_config(name)).task == "tracking"
    with pytest.raises(ConfigError, match="data.format"):
        load_config(packaged_config("sot_demo_cpu"), ["data.format=vid"])


@pytest.mark.parametrize("region", [(10.3, 5.7, 23.1), (-12.5, -7.2, 40.0), (80.2, 50.9, 30.0), (-60.0, 2.0, 20.0),
                                    (150.0, 90.0, 10.0), (-20.0, -20.0, 200.0)])
def test_crop_frame_equals_the_crop_of_the_whole_frame(region):
    from stpn.tracking.model import crop_frame, to_tensor
    frame = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    torch.testing.assert_close(crop_frame(frame, region, 16), crop(to_tensor(frame), region, 16), atol=1e-4, rtol=1e-4)


def test_track_command_on_a_frame_folder(trained_run, tmp_path):
    from stpn.data.types import save_jpeg
    run, _ = trained_run
    frames, gt = moving_square(5)
    for t, f in enumerate(frames):
        save_jpeg(tmp_path / "frames" / f"{t:05d}.jpg", f)
    assert main(["track", str(tmp_path / "frames"), "--box", ",".join(str(v) for v in gt[0]), "--weights", str(run),
                 "--txt", str(tmp_path / "boxes.txt")]) == 0
    assert len((tmp_path / "boxes.txt").read_text().splitlines()) == 5


def test_exported_tracker_tracks_a_video_like_the_run(trained_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from stpn.data.video import write_video
    from stpn.export import read_manifest
    run, _ = trained_run
    assert main(["export", "--weights", str(run), "--out", str(tmp_path / "onnx")]) == 0
    manifest = read_manifest(tmp_path / "onnx")
    assert manifest["task"] == "tracker" and manifest["graphs"][-2:] == ["template.onnx", "head.onnx"]
    frames, gt = moving_square(10)
    write_video(tmp_path / "in.mp4", iter(frames), fps=10)
    box = ",".join(str(v) for v in gt[0])
    assert main(["track", str(tmp_path / "in.mp4"), "--box", box, "--weights", str(run),
                 "--txt", str(tmp_path / "torch.txt")]) == 0
    assert main(["track", str(tmp_path / "in.mp4"), "--box", box, "--onnx", str(tmp_path / "onnx"),
                 "--txt", str(tmp_path / "onnx.txt")]) == 0
    a, b = (np.loadtxt(tmp_path / f"{n}.txt", delimiter=",") for n in ("torch", "onnx"))
    assert a.shape == (10, 4)
    np.testing.assert_allclose(b, a, atol=0.1)
    capsys.readouterr()
    assert main(["track", str(tmp_path / "in.mp4"), "--box", box]) == 2
    assert "either --weights" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "in.mp4"), "--box", box, "--onnx", str(tmp_path / "onnx"),
                 "--num-support", "7"]) == 2
    assert "exported for K=" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "in.mp4"), "--box", box, "--onnx", str(tmp_path / "onnx"),
                 "--device", "cuda"]) == 2
    assert "--device do not apply" in capsys.readouterr().err


def test_robustness_clean_score_is_the_evaluations_ao(trained_run, tmp_path):
    from stpn.robustness import run_robustness
    run, _ = trained_run
    report = run_robustness({"stpn": str(run)}, tmp_path / "rob", ["motion_blur"], [3])
    assert main(["eval", "--weights", str(run), "--out", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    entry = report["runs"]["stpn"]
    assert entry["metric"] == "AO" and entry["clean"] == pytest.approx(metrics["ao_all"], abs=1e-9)
    assert set(entry["curves"]["motion_blur"]) == {"key+support", "key"}


def test_support_swap_diagnostic_regenerates_the_validation_targets(trained_run, tmp_path):
    from stpn.data.splits import read_split
    from stpn.tracking.build import load_tracker
    from stpn.tracking.diagnostics import main as diagnose
    from stpn.tracking.diagnostics import object_boxes, swap_test, validation_videos
    run, _ = trained_run
    model, cfg = load_tracker(run)
    full, stored = validation_videos(cfg), read_split(cfg.data, cfg.data.val_split)
    assert [v.name for v in full] == [v.name for v in stored]
    for v, s in zip(full, stored):  # the GOT-10k target is the first object visible in frame 0
        first = v.targets[0]
        target = object_boxes(v, int(first.track_ids[first.visible][0]))
        np.testing.assert_allclose(target[0], [*s.targets[0].boxes[0][:2], *(s.targets[0].boxes[0][2:] - s.targets[0].boxes[0][:2])],
                                   atol=1e-3)
    # the search region itself as the support region is the usual path
    video = full[0]
    box0 = object_boxes(video, int(video.targets[0].track_ids[0]))[0]
    a, b = start(model, video.frames[0], box0, 2, 1, 1), start(model, video.frames[0], box0, 2, 1, 1)
    for t in range(1, len(video)):
        region = crop_region(b.box, model.search_factor)
        ra, _, a = step(model, video.frames[t], a)
        rb, _, b = step(model, video.frames[t], b, support_region=region)
        np.testing.assert_array_equal(ra, rb)
    result = swap_test(model, full, 2, 1, 1, model.search_factor)
    assert result["sequences"] >= 1 and 0 <= result["swapped"]["on_distractor"] <= 1
    plain = tiny_tracker(prompting=False, prompt_depth="shallow", template_size=model.template_size,
                         search_size=model.search_size)
    assert set(swap_test(plain, full, 2, 1, 1, model.search_factor)) == {"sequences", "own"}
    # split by the deteriorated frames the sidecar lists: the parts add up to the whole
    from stpn.data.splits import read_sidecar, sidecar_path
    _, bad = validation_videos(cfg, with_deteriorated=True)
    sidecar = read_sidecar(sidecar_path(cfg.data, cfg.data.val_split))
    assert [sorted(b) for b in bad] == [sorted(sidecar[v.name]) for v in full]
    split = swap_test(model, full, 2, 1, 1, model.search_factor, bad)
    for setting in ("own", "swapped"):
        r, parts = split[setting], [split[setting]["clean"], split[setting]["deteriorated"]]
        assert r["ao"] == result[setting]["ao"] and sum(q["frames"] for q in parts) == r["frames"]
        used = [(v, b) for v, b in zip(full, bad) if v.targets[0].visible.sum() >= 2]  # with a distractor
        assert parts[1]["frames"] == sum(  # scored: deteriorated frames where the target is visible
            object_boxes(v, int(v.targets[0].track_ids[v.targets[0].visible][0]))[t] is not None for v, b in used for t in b)
        assert parts[1]["frames"] > 0
        for key in ("ao", "on_distractor"):
            total = sum(q[key] * q["frames"] for q in parts if q["frames"])
            assert total / r["frames"] == pytest.approx(r[key], abs=1e-12)
    assert diagnose(["--weights", str(run), "--json", str(tmp_path / "swap.json")]) == 0
    assert json.loads((tmp_path / "swap.json").read_text())["sequences"] == result["sequences"]
