import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import TINY_DETECTION, assert_same_detections, tiny_config, write_det
from stpn.cli import main
from stpn.core.weights import WeightsError, load_backbone_weights
from stpn.data import open_video, write_video
from stpn.data.synth import SynthConfig, synth_video
from stpn.detection.task import DetectionTask
from stpn.engine.config import ConfigError, load_config, packaged_config
from stpn.engine.trainer import train

TINY = TINY_DETECTION


@pytest.mark.parametrize("extra", [["model.prompt_depth=shallow"], ["model.prompt_depth=deep"], ["model.prompting=false"], ["model.predictor=decoder", "model.predictor_kwargs={}"]])
def test_one_training_step_in_each_mode_updates_the_weights(tmp_path, extra):
    cfg = tiny_config(tmp_path, *extra)
    out = train(cfg, DetectionTask(), max_iterations=1)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["iteration"] == 1 and np.isfinite(log[0]["loss"]) and log[0]["loss"] > 0
    assert {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} <= set(log[0])
    trained = load_file(str(out / "model.safetensors"))
    torch.manual_seed(cfg.run.seed)
    initial = DetectionTask().build_model(cfg).state_dict()
    changed = [k for k in trained if not torch.equal(trained[k], initial[k])]
    # one AdamW step moves a weight by about lr: the rebuilt model is the run's starting point
    assert max((trained[k] - initial[k]).abs().max().item() for k in changed) < 10 * cfg.optim.lr
    assert any("roi_heads" in k for k in changed) and any("stpn.backbone" in k for k in changed)
    predictor = [k for k in initial if k.startswith("backbone.stpn.predictor.")]
    if cfg.model.prompting:  # the STPN predictor learns through the prompted pass (not roi_heads.box_predictor)
        assert predictor and any(k in changed for k in predictor)
    else:
        assert predictor == []


def test_deteriorated_repeat_lists_deteriorated_key_frames_more_often(tmp_path):
    plain = DetectionTask().train_dataset(tiny_config(tmp_path))
    sidecar = json.loads((tmp_path / "data" / "deteriorated_train.json").read_text())
    bad = {(v.name, t) for v in plain.videos for t in sidecar["videos"][v.name]["frames"]}
    assert bad, "the generated training split should have deteriorated frames"
    repeated = DetectionTask().train_dataset(tiny_config(tmp_path, "detection.deteriorated_repeat=3"))
    counts = {(plain.videos[v].name, t): repeated.items.count((v, t)) for v, t in plain.items}
    assert counts == {key: 3 if key in bad else 1 for key in counts}
    assert len(repeated) == len(plain) + 2 * len(bad)
    (tmp_path / "data" / "deteriorated_train.json").unlink()
    with pytest.raises(FileNotFoundError, match="deteriorated_train.json: no deteriorated-frames sidecar"):
        DetectionTask().train_dataset(tiny_config(tmp_path, "detection.deteriorated_repeat=3"))
    with pytest.raises(ConfigError, match="detection.deteriorated_repeat"):
        tiny_config(tmp_path, "detection.deteriorated_repeat=0")


def test_resume_continues_exactly(tmp_path):
    straight = train(tiny_config(tmp_path / "a"), DetectionTask())
    cfg = tiny_config(tmp_path / "b")
    train(cfg, DetectionTask(), max_iterations=4)  # stops mid-epoch (6 iterations per epoch)
    latest = (Path(cfg.run.out) / "checkpoints" / "latest").read_text()
    assert latest == "iter_00000004"
    resumed = train(cfg, DetectionTask(), resume="auto")
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    iterations = [json.loads(line)["iteration"] for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert iterations == list(range(1, 13))  # the log continues where it stopped


def test_data_loader_workers_and_a_resume_with_workers_give_the_same_weights(tmp_path):
    """Decoding in 2 worker processes changes nothing: same items, same order, same weights,
    also when the run stops mid-epoch and resumes with the workers."""
    base = train(tiny_config(tmp_path / "a", "optim.accumulate=2"), DetectionTask())
    cfg = tiny_config(tmp_path / "b", "optim.accumulate=2", "run.num_workers=2")
    train(cfg, DetectionTask(), max_iterations=2)  # 3 iterations per epoch of 2 x 2 key frames
    workers = train(cfg, DetectionTask(), resume="auto")
    a, b = load_file(str(base / "model.safetensors")), load_file(str(workers / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_sampler_is_a_torch_sampler_of_whole_videos_that_starts_mid_epoch():
    from stpn.engine.trainer import VideoShardSampler
    video_of_item = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
    ranks = [VideoShardSampler(video_of_item, r, 2, seed=5, batch_size=2) for r in range(2)]
    for s in ranks:
        s.set_epoch(3)
    seen = [[i for b in s for i in b] for s in ranks]
    assert len(seen[0]) == len(seen[1])  # lockstep
    videos = [{video_of_item[i] for i in items} for items in seen]
    assert not videos[0] & videos[1] and videos[0] | videos[1] == {0, 1, 2, 3}  # whole videos per rank
    full = list(ranks[0])
    ranks[0].set_epoch(3, start=1)
    assert list(ranks[0]) == full[1:] and len(ranks[0]) == len(full) - 1
    assert isinstance(ranks[0], torch.utils.data.Sampler)
    ranks[0].set_epoch(4)
    assert list(ranks[0]) != full  # another epoch, another order


def test_two_process_torchrun_ends_with_identical_weights(tmp_path):
    cfg_args = TINY + [f"data.root={tmp_path / 'data'}", f"run.out={tmp_path / 'run'}", "optim.epochs=1"]
    # generate the data once, before the ranks start
    DetectionTask().train_dataset(tiny_config(tmp_path))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "stpn", "train", str(packaged_config("demo_cpu")), *cfg_args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    checksums = json.loads((tmp_path / "run" / "ranks.json").read_text())["checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_detect_writes_an_annotated_video_with_every_frame(tmp_path):
    cfg = tiny_config(tmp_path)
    out = train(cfg, DetectionTask(), max_iterations=1)
    video, _, _ = synth_video(SynthConfig(videos=1, frames=7, width=96, height=64, seed=9), 0)
    clip = write_video(tmp_path / "clip.mp4", [video.frames[t] for t in range(7)], fps=10)
    for mode in ("causal", "global"):
        ann, dets = tmp_path / f"ann_{mode}.mp4", tmp_path / f"dets_{mode}.json"
        assert main(["detect", str(clip), "--weights", str(out / "model.safetensors"), "--out", str(ann),
                     "--json", str(dets), "--mode", mode, "--score-threshold", "0"]) == 0
        assert len(open_video(ann)) == 7
        record = json.loads(dets.read_text())
        assert record["mode"] == mode and len(record["frames"]) == 7
        # the test-time supports default to the config's, as stpn eval uses them
        assert (record["num_support"], record["stride"], record["refresh_every"]) == \
            (cfg.data.test_num_support, cfg.data.test_stride, cfg.data.test_refresh_every)
        boxes = [d for f in record["frames"] for d in f["detections"]]
        assert all({"box", "label", "class", "score", "track_id"} <= set(d) for d in boxes)


def test_eval_scores_the_validation_split(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    out = train(cfg, DetectionTask(), max_iterations=1)
    for mode in ("global", "local", "causal"):
        assert main(["eval", "--weights", str(out / "model.safetensors"), "--mode", mode,
                     "--out", str(tmp_path / mode)]) == 0
        metrics = json.loads((tmp_path / mode / "metrics.json").read_text())
        assert metrics["mode"] == mode and 0 <= metrics["ap50_all"] <= 1 and "ap50_deteriorated" in metrics
    # overrides without a config (they were taken for a config path); the settings used are recorded
    assert main(["eval", "--weights", str(out), "data.test_num_support=4", "--mode", "local",
                 "--out", str(tmp_path / "k4")]) == 0
    assert json.loads((tmp_path / "k4" / "metrics.json").read_text())["num_support"] == 4
    assert main(["eval", "--weights", str(out), "data.test_num_support=3", "--mode", "local",
                 "--out", str(tmp_path / "k3")]) == 2
    assert "needs an even num_support (K), got K=3" in capsys.readouterr().err
    assert not (tmp_path / "k3" / "metrics.json").exists()


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"unknown config key optim.lrr \(did you mean optim.lr\?\)"):
        load_config(packaged_config("demo_cpu"), ["optim.lrr=0.1"])
    assert main(["detect", "x.mp4", "--weights", str(tmp_path / "missing.safetensors")]) == 2
    assert "weights file not found" in capsys.readouterr().err
    cfg = tiny_config(tmp_path)
    out = train(cfg, DetectionTask(), max_iterations=1)
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    assert main(["detect", str(tmp_path / "broken.mp4"), "--weights", str(out / "model.safetensors")]) == 2
    assert "broken.mp4" in capsys.readouterr().err
    baseline_cfg = tmp_path / "baseline.yaml"
    baseline_cfg.write_text(json.dumps({**json.loads((out / "config.json").read_text()),
                                        "model": {**json.loads((out / "config.json").read_text())["model"],
                                                  "backbone": "vit_tiny_patch16_224", "backbone_kwargs": {}}}))
    assert main(["eval", str(baseline_cfg), "--weights", str(out / "model.safetensors")]) == 2
    assert "does not fit this detector" in capsys.readouterr().err


def _mmdet_layout(backbone):
    """A timm Swin state dict written the way mmdetection stores it."""
    out = {}
    for k, v in backbone.state_dict().items():
        if k.startswith("stage_norms."):
            out[k.replace("stage_norms.", "backbone.norm")] = v
            continue
        k = k.removeprefix("body.")
        if k.startswith("norm."):
            out[f"backbone.norm{len(backbone.dims) - 1}.{k[5:]}"] = v
            continue
        if "downsample" in k:
            stage = int(k.split(".")[1])
            C = backbone.dims[stage - 1]
            perm = torch.tensor([4 * c + u for u in (0, 2, 1, 3) for c in range(C)])
            inv = torch.empty_like(perm)
            inv[perm] = torch.arange(len(perm))
            v = v[:, inv] if v.dim() == 2 else v[inv]
            k = f"stages.{stage - 1}.downsample.{k.split('downsample.')[1]}"
        k = k.replace("layers.", "stages.").replace("patch_embed.proj", "patch_embed.projection")
        k = k.replace("attn.qkv", "attn.w_msa.qkv").replace("attn.proj", "attn.w_msa.proj")
        k = k.replace("attn.relative_position", "attn.w_msa.relative_position")
        k = k.replace("mlp.fc1", "ffn.layers.0.0").replace("mlp.fc2", "ffn.layers.1")
        out[f"backbone.{k}"] = v
    return out


def test_backbone_weights_from_timm_and_mmdetection_layouts(tmp_path):
    from stpn.core.swin import PromptedSwin
    kw = dict(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2), window_size=4)
    source = PromptedSwin(**kw).eval()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    images = torch.randn(1, 3, 64, 64)
    expected = source(images)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "timm.safetensors"))
    torch.save({"state_dict": _mmdet_layout(source), "meta": {}}, tmp_path / "mmdet.pth")
    # a model holding the backbone as `backbone` (stpn's classifier) or as `backbone.stpn.backbone` (a detector)
    for prefix in ("backbone.", "backbone.stpn.backbone."):
        save_file({prefix + k: v.contiguous() for k, v in source.state_dict().items()} | {"head.weight": torch.zeros(3, 8)},
                  str(tmp_path / f"{prefix}safetensors"))
    for path in (tmp_path / "timm.safetensors", tmp_path / "mmdet.pth", tmp_path / "backbone.safetensors",
                 tmp_path / "backbone.stpn.backbone.safetensors"):
        target = PromptedSwin(**kw).eval()
        report = load_backbone_weights(target, path)
        assert report["missing"] == [] and report["loaded"] == len(source.state_dict()), path
        with torch.no_grad():
            assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(target(images), expected))


def test_weights_of_another_architecture_or_a_pickle_are_refused(tmp_path):
    from stpn.core.swin import PromptedSwin
    from stpn.core.vit import PromptedViT
    vit = PromptedViT("vit_tiny_patch16_224", embed_dim=32, depth=2, num_heads=2, img_size=64)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    swin = PromptedSwin(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), window_size=4)
    with pytest.raises(WeightsError, match="no key matches this PromptedSwin"):
        load_backbone_weights(swin, tmp_path / "vit.safetensors")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    torch.save({"state_dict": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="cannot be read as a weights-only checkpoint"):
        load_backbone_weights(swin, tmp_path / "evil.pth")


def test_quick_demo_writes_report_chart_and_video_and_resumes(tmp_path, capsys, monkeypatch):
    threads, evaluate = [], DetectionTask.evaluate

    def counting(self, *args, **kwargs):  # the demo evaluates on one thread, on either path
        threads.append(torch.get_num_threads())
        return evaluate(*args, **kwargs)  # the hook is the plain function evaluate_run
    monkeypatch.setattr(DetectionTask, "evaluate", counting)
    torch.set_num_threads(2)  # the suite runs on one; the demo must go to one for its evaluations
    try:
        assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
        assert threads == [1, 1] and torch.get_num_threads() == 2  # and back after them
    finally:
        torch.set_num_threads(1)
    report = json.loads((tmp_path / "report.json").read_text())
    for name in ("stpn", "baseline"):
        assert set(report[name]) >= {"ap50_all", "ap50_deteriorated", "train_seconds"}
        assert 0 <= report[name]["ap50_all"] <= 1 and report[name]["train_seconds"] > 0
    assert report["config"]["model"]["prompting"] is True and report["quick"] is True
    # both detectors started from the demo's pre-trained backbone, which is scored on its own
    pre = report["pretrain"]
    assert pre["train_seconds"] > 0 and 0 <= pre["accuracy_clean"] <= 1 and pre["crops_deteriorated"] > 0
    assert report["config"]["model"]["weights"] == str(tmp_path / "pretrain" / "model.safetensors")
    assert report["pretrain_config"]["task"] == "classification"
    assert (tmp_path / "ap50.png").stat().st_size > 1000
    assert len(open_video(tmp_path / "stpn_val0.mp4")) == 10
    first = report["stpn"]["ap50_all"]
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0  # finished runs are not trained again
    again = json.loads((tmp_path / "report.json").read_text())
    assert again["stpn"]["ap50_all"] == first and again["stpn"]["train_seconds"] == report["stpn"]["train_seconds"]
    # evaluated again after both trainings, on one thread as when the demo evaluated it while the other trained
    assert again["baseline"]["ap50_all"] == report["baseline"]["ap50_all"]
    assert again["pretrain"] == report["pretrain"]
    # the full demo never reuses a quick demo's folder (it reported the quick runs as its own)
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "holds a demo with other settings (stpn demo --task det --quick; this one: stpn demo --task det)" \
        in capsys.readouterr().err
    assert json.loads((tmp_path / "report.json").read_text()) == again  # and leaves it as it was


def test_quick_demos_default_to_their_own_folders(monkeypatch):
    import stpn.demos.paired
    seen = []
    monkeypatch.setattr(stpn.demos.paired, "run_paired_demo",
                        lambda task, out, quick, seed, static: seen.append((str(out), quick, seed, static)) or task)
    for argv in (["demo"], ["demo", "--quick"], ["demo", "--task", "sot"], ["demo", "--task", "sot", "--quick"],
                 ["demo", "--seed", "2"], ["demo", "--task", "sot", "--quick", "--seed", "1"], ["demo", "--static"]):
        assert main(argv) == 0
    assert seen == [("runs/demo", False, 0, False), ("runs/demo_quick", True, 0, False),
                    ("runs/demo_sot", False, 0, False), ("runs/demo_sot_quick", True, 0, False),
                    ("runs/demo_seed2", False, 2, False), ("runs/demo_sot_quick_seed1", True, 1, False),
                    ("runs/demo", False, 0, True)]


def test_demo_seed_0_is_the_default_and_other_seeds_change_data_and_training_seeds(tmp_path):
    from stpn.detection.demo import demo_config, pretrain_config
    from stpn.engine.config import config_dict
    assert config_dict(demo_config(tmp_path, False, True, 0)) == config_dict(demo_config(tmp_path, False, True))
    cfg, pre = demo_config(tmp_path, False, True, 3), pretrain_config(tmp_path, False, 3)
    assert cfg.run.seed == 3 and cfg.data.synth["train_seed"] == 6 and cfg.data.synth["val_seed"] == 7
    assert pre.data.synth == cfg.data.synth  # the pre-training reads the same data


def test_support_swap_diagnostic_swaps_only_the_supports(tmp_path):
    import copy

    from stpn.detection import diagnostics as swap
    from stpn.detection.inference import _image, inclusive_detections, predict_video
    cfg = tiny_config(tmp_path)
    torch.manual_seed(0)
    det = DetectionTask().build_model(cfg).eval()
    det.roi_heads.score_thresh = 0.0  # random weights: every frame has a top detection
    video, chosen, _ = synth_video(SynthConfig(videos=1, frames=7, width=96, height=64, max_objects=1, deteriorated=0.5, seed=9), 0)
    twin = copy.copy(video)  # the same pixels, another class: swapped supports equal the own ones
    twin.name = "twin"
    twin.targets = [copy.copy(tg) for tg in video.targets]
    for tg in twin.targets:
        tg.labels = tg.labels % 3 + 1
    counts = swap.swap_test(det, [video, twin], {video.name: chosen, "twin": chosen})
    assert counts["frames"] == 2 * len(chosen) > 0
    assert counts["swapped_right"] == counts["own_right"]  # the same supports give the same top class
    other, _, _ = synth_video(SynthConfig(videos=1, frames=7, width=96, height=64, max_objects=1, seed=11), 0)
    t = chosen[0]
    # own supports: what stpn eval's local inference gives; swapped: the batch computation with
    # the other video's frames t-1, t+1 as supports of this key frame
    local = list(predict_video(det, video, "local", 2, 1))[t]
    assert swap.top_class(det, video, t, video) == int(local["labels"][0])
    with torch.no_grad():
        out = det([_image(video.frames[t])], support=[torch.stack([_image(other.frames[j]) for j in (t - 1, t + 1)])],
                  support_offsets=torch.tensor([[-1, 1]]))[0]
    assert swap.top_class(det, video, t, other) == int(inclusive_detections(out, 64, 96)["labels"][0])
    mixed = copy.copy(twin)
    mixed.name, mixed.targets = "mixed", twin.targets[:1] + video.targets[1:]
    with pytest.raises(ValueError, match="video mixed: the swap test needs one class per video"):
        swap.swap_test(det, [mixed, video], {"mixed": [1], video.name: [1]})


def test_training_adds_the_det_images_as_one_frame_videos(tmp_path):
    cfg = tiny_config(tmp_path, "detection.det_image_set=DET_train_30classes")
    plain = DetectionTask().train_dataset(tiny_config(tmp_path))  # generates the VID-layout data
    write_det(tmp_path / "data", {"f/a": [("n02691156", (3, 4, 40, 30))], "f/b": [("n02419796", (5, 5, 30, 40))]})
    mixed = DetectionTask().train_dataset(cfg)
    assert len(mixed) == len(plain) + 2
    det = [mixed[i] for i in range(len(mixed)) if mixed[i].video.startswith("DET/")]
    assert [s.targets.labels.tolist() for s in det] == [[1], [2]]
    assert all(torch.equal(s.support[k], s.frame) for s in det for k in range(len(s.support)))
    batch = mixed.collate(det)  # one step on DET images alone: the detector takes them as any key frame
    model = DetectionTask().build_model(cfg).train()
    losses = DetectionTask().loss(model, batch, "cpu")
    assert all(torch.isfinite(v) for v in losses.values())


def test_detections_in_inclusive_pixels_are_never_inverted_nor_outside_the_image():
    from stpn.detection.inference import inclusive_detections
    # exclusive corners from the detector: a box narrower than a pixel, one clipped onto the right
    # border (zero width at x = W), an ordinary one
    out = inclusive_detections({"boxes": torch.tensor([[5.0, 5.0, 5.4, 9.0], [96.0, 0.0, 96.0, 10.0], [1.0, 2.0, 11.0, 22.0]]),
                                "labels": torch.tensor([1, 2, 3]), "scores": torch.tensor([0.9, 0.8, 0.7])}, 64, 96)
    boxes = out["boxes"]
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert boxes[:, 0::2].max() <= 95 and boxes[:, 1::2].max() <= 63 and boxes.min() >= 0
    assert boxes.tolist() == [[5.0, 5.0, 5.0, 8.0], [95.0, 0.0, 95.0, 9.0], [1.0, 2.0, 10.0, 21.0]]


@pytest.mark.parametrize("mode, K, S, refresh, message", [
    ("local", 3, 1, 1, r"symmetric around t and needs an even num_support \(K\), got K=3"),
    ("local", 0, 1, 1, r"num_support \(K\) must be an integer >= 1, got 0"),
    ("global", 0, 1, 1, r"num_support \(K\) must be an integer >= 1, got 0"),
    ("causal", 2, 0, 8, r"stride \(S\) must be an integer >= 1, got 0"),
    ("causal", 2, 1, 0, r"refresh_every must be an integer >= 1, got 0"),
])
def test_test_time_supports_the_core_rejects_fail_before_anything_runs(tmp_path, mode, K, S, refresh, message):
    from stpn.detection.inference import predict_video
    det = DetectionTask().build_model(tiny_config(tmp_path))
    video, _, _ = synth_video(SynthConfig(videos=1, frames=3, width=96, height=64, seed=1), 0)
    with pytest.raises(ValueError, match=message):
        predict_video(det, video, mode, K, S, refresh)  # raised on the call, not at the first frame


def test_detect_keeps_the_frames_before_a_frame_that_breaks(tmp_path, capsys):
    from stpn.data.types import save_jpeg
    cfg = tiny_config(tmp_path)
    out = train(cfg, DetectionTask(), max_iterations=1)
    video, _, _ = synth_video(SynthConfig(videos=1, frames=6, width=96, height=64, seed=9), 0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(6):
        save_jpeg(folder / f"{t:05d}.jpg", video.frames[t])
    (folder / "00004.jpg").write_bytes(b"not a jpeg")  # the fifth frame is broken
    ann, dets = tmp_path / "ann.mp4", tmp_path / "dets.json"
    assert main(["detect", str(folder), "--weights", str(out / "model.safetensors"), "--out", str(ann),
                 "--json", str(dets), "--score-threshold", "0"]) == 2
    assert re.search(r"stpn detect: error: .*frames: stopped at frame 4 .*00004.jpg.*kept the 4 frames before it",
                     capsys.readouterr().err)
    assert len(open_video(ann)) == 4 and len(json.loads(dets.read_text())["frames"]) == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_drawing_never_fails_on_boxes_the_detector_gives():
    from stpn.draw import draw_box, draw_masks
    from stpn.draw import draw_detections as draw
    frame = np.zeros((64, 96, 3), np.uint8)
    boxes = np.array([[5.0, 5.0, 5.0, 5.0], [95.0, 0.0, 95.0, 63.0], [0.0, 63.0, 95.0, 63.0]])  # one pixel, edges
    out = draw(frame, boxes, np.array([1, 2, 3]), np.array([0.9, 0.5, 0.1]), np.array([1, 2, 3]), ["a", "b", "c"])
    assert out.shape == frame.shape and out.dtype == np.uint8 and out.any()
    assert (out[5, 5] == (60, 180, 75)).all()  # track 1's colour on its one-pixel box
    assert (draw(frame, np.zeros((0, 4)), [], [], [], []) == 0).all()
    boxed = draw_box(frame, [10, 20, 30, 15], 0.87)
    assert (boxed[35, 25] == (255, 64, 64)).all() and (boxed[32, 36] == 0).all()  # bottom edge drawn, inside not
    mask = np.zeros((1, 64, 96), bool)
    mask[0, 10:20, 30:40] = True
    painted = draw_masks(np.full((64, 96, 3), 100, np.uint8), mask, [3], alpha=1.0)
    assert (painted[15, 35] == (0, 130, 200)).all() and (painted[0, 0] == 100).all()


@pytest.mark.parametrize("mode, K, S, refresh", [("global", 3, 1, 1), ("local", 2, 2, 1), ("causal", 2, 2, 3),
                                                 ("causal", 3, 1, 1)])
def test_video_and_stream_inference_equal_the_batch_computation_for_every_policy(tmp_path, mode, K, S, refresh):
    """Frame t's detections == det([frame_t], support=[frames[support(t)]], offsets) in one call."""
    from stpn.core.sampling import causal_support, global_support, local_support
    from stpn.detection.inference import _image, inclusive_detections, predict_stream, predict_video
    det = DetectionTask().build_model(tiny_config(tmp_path, "model.predictor=decoder", "model.predictor_kwargs={}")).eval()
    det.roi_heads.score_thresh = 0.0  # random weights: keep every box, so the comparison sees them all
    video, _, _ = synth_video(SynthConfig(videos=1, frames=7, width=96, height=64, seed=3), 0)
    N = len(video)
    got = list(predict_video(det, video, mode, K, S, refresh))
    if mode == "causal":
        streamed = list(predict_stream(det, (video.frames[t] for t in range(N)), K, S, refresh))
    for t in range(N):
        if mode == "global":
            index, origin = global_support(N, K), None
        elif mode == "local":
            index, origin = local_support(t, N, K, S), t
        else:
            origin = (t // refresh) * refresh
            index = causal_support(origin, N, K, S)
        offsets = None if origin is None else torch.tensor([[i - origin for i in index]])
        with torch.no_grad():
            out = det([_image(video.frames[t])], support=[torch.stack([_image(video.frames[i]) for i in index])],
                      support_offsets=offsets)[0]
        expected = inclusive_detections(out, 64, 96)
        assert len(expected["scores"]) > 0
        for result in [got[t]] + ([streamed[t]] if mode == "causal" else []):
            assert_same_detections(result, expected, box_atol=1e-3, score_atol=1e-5,
                                   top_k=det.roi_heads.detections_per_img)
