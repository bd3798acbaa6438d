"""Run folders are owned: another configuration, a second training, a corrupt checkpoint and
Ctrl-C each get a clear answer instead of a silently wrong run."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import TINY_DETECTION, tiny_config
from stpn.detection.task import DetectionTask
from stpn.engine.trainer import train


def test_a_folder_holding_another_configuration_is_refused_naming_the_key(tmp_path):
    train(tiny_config(tmp_path), DetectionTask(), max_iterations=2)
    other = tiny_config(tmp_path, "optim.lr=1e-4")
    with pytest.raises(ValueError, match=r"holds a run of another configuration \(optim.lr: 0.0005 there, 0.0001 here\)"
                                         r": pass --overwrite"):
        train(other, DetectionTask(), max_iterations=1)
    with pytest.raises(ValueError, match="holds a run of another configuration"):
        train(other, DetectionTask(), resume="auto", max_iterations=1)  # --resume is only for the same configuration
    train(other, DetectionTask(), max_iterations=1, overwrite=True)
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(log) == 1 and json.loads((tmp_path / "run" / "config.json").read_text())["optim"]["lr"] == 1e-4


def test_the_same_configuration_needs_resume_or_overwrite(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    train(cfg, DetectionTask(), resume="auto", max_iterations=1)
    assert "nothing to resume in" in capsys.readouterr().out
    with pytest.raises(ValueError, match="already holds a run of this configuration: --resume auto continues it"):
        train(cfg, DetectionTask(), max_iterations=2)
    # threads do not change what a run computes: a resume may use other values
    train(tiny_config(tmp_path, "run.threads=1"), DetectionTask(), resume="auto", max_iterations=2)
    assert "resuming from" in capsys.readouterr().out


def test_resume_auto_skips_an_unreadable_newest_checkpoint_and_says_so(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    train(cfg, DetectionTask(), max_iterations=4)  # checkpoints at iterations 3 and 4
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("iter_*")) == ["iter_00000003", "iter_00000004"]
    (ckpts / "iter_00000004" / "state.pt").write_bytes(b"truncated")
    capsys.readouterr()
    train(cfg, DetectionTask(), resume="auto", max_iterations=4)
    out = capsys.readouterr().out
    assert f"checkpoint {ckpts / 'iter_00000004'} cannot be read" in out
    assert f"resuming from {ckpts / 'iter_00000003'} (iteration 3)" in out
    (ckpts / "latest").write_text("")  # an empty pointer is reported, the folders are still found
    train(cfg, DetectionTask(), resume="auto", max_iterations=4)
    assert "names '', which is not a checkpoint folder" in capsys.readouterr().out


def test_a_second_training_into_the_folder_is_kept_out(tmp_path):
    cfg = tiny_config(tmp_path)
    (tmp_path / "run").mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run" / ".lock").write_text(str(other.pid))
        with pytest.raises(ValueError, match=rf"being written by another training \(pid {other.pid}"):
            train(cfg, DetectionTask(), max_iterations=1)
    finally:
        other.kill()
        other.wait()
    train(cfg, DetectionTask(), max_iterations=1)  # the lock of a process that ended is taken over
    assert not (tmp_path / "run" / ".lock").exists()
    (tmp_path / "run" / ".lock").write_text("0")  # no process: stale (kill(0) would probe our own group)
    train(cfg, DetectionTask(), resume="auto", max_iterations=1)


def test_a_second_trainer_is_kept_out_and_ctrl_c_ends_training_with_one_line_and_an_intact_checkpoint(tmp_path):
    from stpn.engine.config import packaged_config
    args = [sys.executable, "-m", "stpn", "train", str(packaged_config("demo_cpu")), *TINY_DETECTION,
            f"data.root={tmp_path / 'data'}", f"run.out={tmp_path / 'run'}", "run.checkpoint_every=1",
            "optim.epochs=50", "run.threads=1"]
    # a shell that starts the suite in the background makes its children ignore SIGINT, and Python
    # keeps an ignored SIGINT ignored: give the trainer the default disposition, as a terminal would
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    latest = tmp_path / "run" / "checkpoints" / "latest"
    deadline = time.time() + 240
    while not latest.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert latest.is_file(), proc.communicate()
    # a second training into the folder while the first one runs is kept out
    with pytest.raises(ValueError, match=rf"being written by another training \(pid {proc.pid}"):
        train(tiny_config(tmp_path, "run.checkpoint_every=1", "optim.epochs=50", "run.threads=1"), DetectionTask(),
              resume="auto", max_iterations=1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "stpn train: interrupted"
    assert "is intact: continue with --resume auto" in out
    ckpt = tmp_path / "run" / "checkpoints" / latest.read_text().strip()
    state = torch.load(ckpt / "state.pt", weights_only=True)
    assert state["position"]["iteration"] >= 1 and not (tmp_path / "run" / ".lock").exists()


def test_generated_data_made_with_other_settings_is_refused(tmp_path):
    from stpn.data.splits import read_split
    cfg = tiny_config(tmp_path)
    assert len(read_split(cfg.data, "train")) == 2
    more = tiny_config(tmp_path, "data.synth.train_videos=3")
    with pytest.raises(ValueError, match=r"split 'train' was generated with other settings \(videos: 2 there, 3 here\)"):
        read_split(more.data, "train")
    assert len(read_split(cfg.data, "train")) == 2  # the same settings read it as it is


# configs and tasks ---------------------------------------------------------------------------
def test_a_task_owns_its_section_and_old_flat_keys_move_there_with_a_warning(tmp_path):
    import warnings

    from stpn.engine.config import ConfigError, config_dict, config_from_dict, load_config, packaged_config
    cfg = load_config(packaged_config("demo_cpu"))
    assert cfg.detection is cfg.section and cfg.detection.num_classes == 3 and cfg.model.prompt_depth == "deep"
    data = config_dict(cfg)
    assert "num_classes" not in data["model"] and data["detection"]["num_classes"] == 3
    assert config_dict(config_from_dict(data)) == data  # the dict form round-trips
    old = {**data, "model": {**data["model"], "num_classes": 7, "depth": "shallow"}}
    old["model"].pop("prompt_depth")
    old.pop("detection")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        moved = config_from_dict(old)
    assert moved.detection.num_classes == 7 and moved.model.prompt_depth == "shallow"
    assert any("model.num_classes -> detection.num_classes" in str(w.message) for w in caught)
    with pytest.raises(ConfigError, match="config key tracking: a section of another task"):
        config_from_dict({**data, "tracking": {"search_size": 64}})
    with pytest.raises(ConfigError, match=r"unknown config key detection.num_clases \(did you mean detection.num_classes"):
        config_from_dict(data, ["detection.num_clases=3"])
    with pytest.raises(ConfigError, match=r"task: must be one of classification, detection, segmentation, tracking, got 'detektion'"):
        config_from_dict(data, ["task=detektion"])
    with pytest.raises(ConfigError, match="detection.conventions: must be torchvision or mmdet"):
        config_from_dict(data, ["detection.conventions=detectron"])
    with pytest.raises(AttributeError):
        cfg.tracking  # another task's section is not there


def test_every_registered_task_implements_the_interface():
    from stpn.engine.registry import demo_module, demo_names, get_task, task_names
    from stpn.engine.tasks import Task
    assert task_names() == ["classification", "detection", "segmentation", "tracking"]
    for name in task_names():
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name and task.data_formats
        for hook in ("build_model", "train_dataset", "loss", "evaluate", "print_metrics"):
            assert getattr(type(task), hook) is not getattr(Task, hook), (name, hook)
    assert not any(name.startswith("demo") for name in dir(Task))  # the demos are not the engine's business
    for short in demo_names():
        demo = demo_module(short)
        for hook in ("demo_config", "pretrain_config", "row", "demo_table", "demo_figures"):
            assert callable(getattr(demo, hook)), (short, hook)
        assert demo.METRICS, short  # the scores whose margins the demo reports
    assert {s: demo_module(s).TASK for s in demo_names()} == {"det": "detection", "sot": "tracking", "vis": "segmentation"}


def test_a_task_from_outside_the_package_plugs_in_with_one_registration(tmp_path, monkeypatch):
    """A toy task written here, registered at run time: the config reads its section, the engine
    finds it, and nothing under src/ names it (a packaged task does the same through its entry point)."""
    from dataclasses import dataclass

    from stpn.engine import registry
    from stpn.engine.config import ConfigError, config_from_dict
    from stpn.engine.tasks import Section, Task

    @dataclass
    class ToySection(Section):
        width: int = 3

        def problems(self):
            return [] if self.width > 0 else [("width", "must be > 0")]

    class ToyTask(Task):
        name, what, data_formats, Section = "toy", "toy model", ("vid",), ToySection

    monkeypatch.setattr(registry, "_ADDED", {})
    registry.get_task.cache_clear()
    try:
        registry.register_task(ToyTask)
        assert "toy" in registry.task_names() and isinstance(registry.get_task("toy"), ToyTask)
        cfg = config_from_dict({"task": "toy", "toy": {"width": 5}})
        assert cfg.section.width == 5
        with pytest.raises(ConfigError, match="toy.width.*must be > 0"):
            config_from_dict({"task": "toy", "toy": {"width": 0}})
    finally:
        registry.get_task.cache_clear()


def test_normalisation_comes_from_the_backbone_or_the_config(tmp_path):
    from stpn.core import normalization
    from stpn.detection.task import DetectionTask
    from stpn.engine.config import ConfigError, load_config, packaged_config
    from stpn.tracking.build import build_tracker
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert normalization("swin_tiny_patch4_window7_224") == imagenet
    assert normalization("vit_base_patch16_224") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # timm's AugReg weights
    assert normalization("vit_base_patch16_224", [0.1, 0.2, 0.3], [1, 2, 3]) == ((0.1, 0.2, 0.3), (1.0, 2.0, 3.0))
    # the ViT-B tracking recipe normalises as its timm weights expect; the demos as before
    vit = load_config(packaged_config("got10k_vit_b"), ["model.pretrained=false",
                      "model.backbone_kwargs={embed_dim: 32, depth: 1, num_heads: 2}", "tracking.head_channels=8"])
    assert build_tracker(vit).mean == (0.5, 0.5, 0.5)
    assert build_tracker(load_config(packaged_config("sot_demo_cpu"))).mean == imagenet[0]
    det_cfg = load_config(packaged_config("demo_cpu"), ["model.mean=[0.1, 0.2, 0.3]", "model.std=[1, 1, 1]"])
    det = DetectionTask().build_model(det_cfg)
    assert det.transform.image_mean == [0.1, 0.2, 0.3] and det.transform.image_std == [1.0, 1.0, 1.0]
    released = DetectionTask().build_model(load_config("vid_swin_t_released", [
        "model.backbone_kwargs={embed_dim: 32, depths: [1, 1, 1, 1], num_heads: [1, 1, 2, 2]}",
        "detection.fpn_channels=16", "detection.box_head_dim=32"]))
    assert released.transform.pixel_mean == [123.675, 116.28, 103.53]  # the released constants, from Swin's ImageNet stats
    assert released.transform.pixel_std == [58.395, 57.12, 57.375]
    mine = DetectionTask().build_model(load_config("vid_swin_t_released", [
        "model.backbone_kwargs={embed_dim: 32, depths: [1, 1, 1, 1], num_heads: [1, 1, 2, 2]}",
        "detection.fpn_channels=16", "detection.box_head_dim=32", "model.mean=[0.5, 0.5, 0.5]", "model.std=[0.5, 0.5, 0.5]"]))
    assert mine.transform.pixel_mean == [127.5] * 3  # the config's, not silently the released ones
    with pytest.raises(ConfigError, match="model.mean and model.std must both be null or both be 3 numbers"):
        load_config(packaged_config("demo_cpu"), ["model.mean=[0.1, 0.2, 0.3]"])


def test_an_old_override_replaces_the_value_under_its_new_name():
    import warnings

    from stpn.engine.config import ConfigError, config_dict, config_from_dict, load_config, packaged_config
    data = config_dict(load_config(packaged_config("demo_cpu")))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        cfg = config_from_dict(data, ["model.min_size=[64]", "model.depth=shallow"])
    assert cfg.detection.min_size == [64] and cfg.model.prompt_depth == "shallow"
    both = {**data, "model": {**data["model"], "num_classes": 5}}
    with warnings.catch_warnings(record=True), pytest.raises(ConfigError, match="model.num_classes is now detection.num_classes, and both"):
        warnings.simplefilter("always")
        config_from_dict(both)


def test_every_task_loads_onto_the_configured_device_and_its_inputs_follow(tmp_path, monkeypatch, capsys):
    """run.device (and --device) is passed through to the model; inference moves its inputs to
    the model's device. Checked with cpu named explicitly, and with cuda refused where there is none."""
    import torch

    from stpn.cli import main
    from stpn.data.splits import read_split
    from stpn.detection import inference as det_task
    from stpn.engine.registry import get_task
    from stpn.engine.trainer import train
    cfg = tiny_config(tmp_path, "optim.epochs=1")
    run = train(cfg, get_task("detection"), max_iterations=1)
    model, loaded = get_task("detection").load(run, overrides=["run.device=cpu"])
    assert loaded.run.device == "cpu" and {p.device.type for p in model.parameters()} == {"cpu"}
    seen = []
    real = det_task._image
    monkeypatch.setattr(det_task, "_image", lambda frame: seen.append(1) or real(frame))
    real_backbone = model.stpn.backbone.forward
    devices = []
    monkeypatch.setattr(model.stpn.backbone, "forward",
                        lambda x, *a, **k: devices.append(x.device.type) or real_backbone(x, *a, **k))
    video = read_split(cfg.data, cfg.data.val_split)[0]
    list(det_task.predict_video(model, video, "local", 2, 1, 1, "cpu"))
    assert seen and set(devices) == {"cpu"}
    if not torch.cuda.is_available():
        assert main(["eval", "--weights", str(run), "run.device=cuda"]) == 2
        assert "run.device=cuda but no CUDA device is available" in capsys.readouterr().err
        assert main(["detect", "missing.mp4", "--weights", str(run), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_a_run_folder_written_with_the_old_flat_layout_still_loads_and_resumes(tmp_path):
    """Before task sections, config.json held every task's keys in model and data."""
    import warnings

    from stpn.engine.config import config_dict, config_from_dict
    from stpn.engine.runs import claim_run_folder
    cfg = tiny_config(tmp_path)
    new = config_dict(cfg)
    old = {k: v for k, v in new.items() if k != "detection"}
    old["model"] = {**{k: v for k, v in new["model"].items() if k not in ("prompt_depth", "mean", "std")},
                    "depth": new["model"]["prompt_depth"], **{k: v for k, v in new["detection"].items()
                                                              if k not in ("det_image_set", "deteriorated_repeat")},
                    "template_size": 128, "search_size": 256, "head_channels": 64}  # the tracker's, unused here
    old["data"] = {**new["data"], "det_image_set": None, "deteriorated_repeat": 1, "max_gap": 50, "crop_size": 48}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        back = config_from_dict(old)
    assert config_dict(back) == new
    assert any("model.template_size (a tracking key) dropped" in str(w.message) for w in caught)
    out = tmp_path / "oldrun"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(old))
    assert claim_run_folder(out, new, "auto") is None  # the same run: resumes (nothing to resume yet)


def test_a_margin_with_a_missing_side_is_none_not_a_difference_with_zero():
    from stpn.demos.paired import margin_points
    assert margin_points(0.75, 0.5) == 25.0
    assert margin_points(None, 0.5) is None and margin_points(0.5, None) is None
    assert margin_points(float("nan"), 0.5) is None


def test_the_sampler_deals_an_epoch_once_and_keeps_it():
    from stpn.engine.trainer import VideoShardSampler
    sampler = VideoShardSampler([0, 0, 1, 1, 2], 0, 1, seed=1, batch_size=2)
    calls = []
    real = sampler.indices
    sampler.indices = lambda epoch: calls.append(epoch) or real(epoch)
    sampler.set_epoch(2)
    first = sampler.batches(2)
    assert list(sampler) == first and len(sampler) == len(first) == 3 and calls == [2]
    sampler.batches(3)  # another epoch is dealt anew
    assert calls == [2, 3]


def test_the_registrys_old_home_still_answers_with_a_future_warning():
    import stpn.engine.tasks as old
    from stpn.engine.registry import get_task
    with pytest.warns(FutureWarning, match="stpn.engine.tasks.get_task moved to stpn.engine.registry"):
        assert old.get_task is get_task
