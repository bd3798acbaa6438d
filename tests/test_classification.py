"""Backbone pre-training as an object classifier: crops, training, scoring, and the hand-over of
its backbone to a detector."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from stpn.classification.task import ClassificationTask, ObjectCrops, evaluate_classifier
from stpn.cli import main
from stpn.data.types import ArrayFrames, FrameTargets, Video
from stpn.detection.task import DetectionTask
from stpn.engine.config import ConfigError, load_config, packaged_config
from stpn.engine.trainer import train

TINY_BACKBONE = "model.backbone_kwargs={embed_dim: 16, depths: [1, 1, 1, 1], num_heads: [1, 1, 2, 2], window_size: 4}"


def pretrain_config(tmp_path, *extra):
    return load_config(packaged_config("demo_cpu_pretrain"), [
        TINY_BACKBONE, f"data.root={tmp_path / 'data'}", f"run.out={tmp_path / 'pre'}", "classification.crop_size=24",
        "data.synth={train_videos: 60, val_videos: 8, frames: 3, width: 64, height: 48, classes: 3, max_objects: 1, "
        "deteriorated: 0.3, object_size: [0.5, 0.7]}",
        "optim.batch_size=16", "run.log_every=1", "run.checkpoint_every=1000", *extra])


def frame_video(name="v", frames=2, H=40, W=60):
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8) for _ in range(frames)]
    targets = [FrameTargets([[10, 12, 21, 25], [50, 30, 59, 39]], [2, 3], [1, 2], visible=[True, t == 0])
               for t in range(frames)]
    return Video(name, ArrayFrames(pixels), W, H, targets), pixels


def normalised(pixels):
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255 - mean) / std  # ImageNet's, written out


def test_object_crops_are_squares_of_the_frame_around_each_visible_object():
    video, pixels = frame_video()
    crops = ObjectCrops([video], crop_size=16)
    assert crops.items == [(0, 0, 0), (0, 0, 1), (0, 1, 0)]  # the second object is hidden in frame 1
    image, label = crops[0]  # centre (15.5, 18.5): the square from x 8 (7.5 rounded up), y 11 (10.5)
    assert label == 1 and image.shape == (3, 16, 16)
    torch.testing.assert_close(image, normalised(pixels[0][11:27, 8:24]))
    image, label = crops[1]  # centre (54.5, 34.5) near the corner: moved inside the frame
    assert label == 2
    torch.testing.assert_close(image, normalised(pixels[0][24:40, 44:60]))
    big = ObjectCrops([video], crop_size=48)[0][0]  # taller than the frame: padded below with the mean (0)
    torch.testing.assert_close(big[:, :40], normalised(pixels[0][0:40, 0:48]))
    assert big[:, 40:].abs().max() == 0


def test_object_crops_take_every_nth_frame_jitter_reproducibly_and_name_bad_input():
    video, _ = frame_video(frames=3)
    assert [t for _, t, _ in ObjectCrops([video], 16, key_stride=2).items] == [0, 0, 2]
    a, b = ObjectCrops([video], 16, jitter=4, seed=3), ObjectCrops([video], 16, jitter=4, seed=3)
    assert torch.equal(a[0][0], b[0][0])
    moved = [not torch.equal(a[i][0], ObjectCrops([video], 16)[i][0]) for i in range(len(a))]
    assert any(moved)
    a.set_epoch(1)
    assert any(not torch.equal(a[i][0], b[i][0]) for i in range(len(a)))  # another epoch, other draws
    empty = Video("e", ArrayFrames([np.zeros((40, 60, 3), np.uint8)]), 60, 40, [FrameTargets.empty()])
    with pytest.raises(ValueError, match="no annotated objects"):
        ObjectCrops([empty], 16)
    with pytest.raises(ValueError, match="video u has no annotations"):
        ObjectCrops([Video("u", ArrayFrames([np.zeros((40, 60, 3), np.uint8)]), 60, 40)], 16)


def test_classification_config_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="classification.crop_size"):
        pretrain_config(tmp_path, "classification.crop_size=0")
    with pytest.raises(ConfigError, match="data.format"):
        pretrain_config(tmp_path, "data.format=got10k")


def test_pretraining_learns_the_classes_and_hands_its_backbone_to_the_detector(tmp_path):
    cfg = pretrain_config(tmp_path, "optim.epochs=10", "optim.warmup_iters=5")
    data = ClassificationTask().train_dataset(cfg)
    sidecar = json.loads((tmp_path / "data" / "deteriorated_train.json").read_text())["videos"]
    crops_of = {(data.videos[v].name, t) for v, t, _ in data.items}
    assert any((name, t) in crops_of for name, s in sidecar.items() for t in s["frames"])  # deteriorated frames too
    out = train(cfg, ClassificationTask())
    model = ClassificationTask().build_model(cfg)
    model.load_state_dict(load_file(str(out / "model.safetensors")))
    metrics = evaluate_classifier(model, cfg)
    assert 0 < metrics["crops_deteriorated"] < metrics["crops"]  # validation crops of every frame, both kinds
    assert metrics["accuracy_clean"] >= 0.8  # 3 classes: chance is 1/3
    # a detector started from it holds exactly the classifier's backbone
    det_cfg = load_config(packaged_config("demo_cpu"), [TINY_BACKBONE, f"data.root={tmp_path / 'data'}",
                                                        f"model.weights={out / 'model.safetensors'}"])
    det = DetectionTask().build_model(det_cfg)
    mine = det.stpn.backbone.state_dict()
    theirs = {k[len("backbone."):]: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    assert set(mine) == set(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_stpn_eval_scores_a_classification_run_and_a_detector_run_loads_without_its_start(tmp_path):
    cfg = pretrain_config(tmp_path, "optim.epochs=1")
    out = train(cfg, ClassificationTask(), max_iterations=1)
    assert main(["eval", "--weights", str(out)]) == 0
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics) >= {"accuracy_all", "accuracy_clean", "accuracy_deteriorated", "crops"}
    assert 0 <= metrics["accuracy_all"] <= 1
    det_cfg = load_config(packaged_config("demo_cpu"), [
        TINY_BACKBONE, "detection.fpn_channels=16", "detection.box_head_dim=32", "detection.min_size=[64]", "detection.max_size=96",
        f"data.root={tmp_path / 'data'}", f"data.synth={json.dumps(cfg.data.synth)}",  # the pre-training's data
        f"run.out={tmp_path / 'det'}", "optim.batch_size=2",
        f"model.weights={out / 'model.safetensors'}"])
    det_run = train(det_cfg, DetectionTask(), max_iterations=1)
    (out / "model.safetensors").unlink()  # the trained detector replaces its starting weights
    from stpn.detection.build import load_detector
    det, loaded = load_detector(det_run)
    assert loaded.model.weights == str(out / "model.safetensors")
    trained = load_file(str(det_run / "model.safetensors"))
    assert all(torch.equal(v, trained[k]) for k, v in det.state_dict().items())


def test_demo_pretraining_config_has_the_detectors_backbone_and_data():
    pre = load_config(packaged_config("demo_cpu_pretrain"))
    det = load_config(packaged_config("demo_cpu"))
    assert (pre.model.backbone, pre.model.backbone_kwargs, pre.classification.num_classes) == \
        (det.model.backbone, det.model.backbone_kwargs, det.detection.num_classes)
    assert (pre.data.root, pre.data.synth, pre.data.train_split, pre.data.val_split) == \
        (det.data.root, det.data.synth, det.data.train_split, det.data.val_split)
