"""Video instance segmentation: the model against torchvision's Mask R-CNN, association cases,
inference invariances, the results file and the evaluator end to end, ``stpn segment``."""
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from conftest import tiny_vis_config
from stpn.association import InstanceTracker
from stpn.cli import main
from stpn.data import open_video, write_video
from stpn.data.splits import read_split
from stpn.data.synth import SynthConfig, synth_video
from stpn.engine.trainer import train
from stpn.evaluation.ytvis import evaluate_ytvis
from stpn.segmentation.inference import VideoTracks, encode, new_tracks, segment_video
from stpn.segmentation.task import SegmentationTask


def square(x0, y0, side=10, h=40, w=60):
    m = np.zeros((h, w), bool)
    m[y0:y0 + side, x0:x0 + side] = True
    return m


def rles(*masks):
    return [encode(m) for m in masks]


# association -------------------------------------------------------------------------------
E = np.eye(4)  # four orthogonal unit embeddings


def test_a_permuted_noisy_frame_keeps_its_ids():
    tr = InstanceTracker(embed_weight=1.0)
    first = tr.update(rles(square(0, 0), square(20, 0), square(40, 20)), [1, 1, 2], E[:3])
    assert first.tolist() == [1, 2, 3]
    # the same objects, moved by a pixel, listed in another order, embeddings a little noisy
    noisy = E[[2, 0, 1], :] + 0.05
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    ids = tr.update(rles(square(41, 21), square(1, 1), square(21, 1)), [2, 1, 1], noisy)
    assert ids.tolist() == [3, 1, 2]


def test_order_within_a_frame_does_not_matter():
    masks, labels = [square(0, 0), square(20, 0), square(40, 20)], [1, 1, 2]
    a, b = InstanceTracker(), InstanceTracker()
    a.update(rles(*masks), labels, E[:3])
    b.update(rles(*masks), labels, E[:3])
    nxt = [square(2, 1), square(22, 1), square(41, 20)]
    ids = a.update(rles(*nxt), labels, E[:3])
    order = [2, 0, 1]
    permuted = b.update(rles(*[nxt[i] for i in order]), [labels[i] for i in order], E[:3][order])
    assert permuted.tolist() == ids[order].tolist()


def test_an_object_appearing_mid_video_gets_a_new_id():
    tr = InstanceTracker()
    tr.update(rles(square(0, 0)), [1], E[:1])
    ids = tr.update(rles(square(1, 0), square(40, 20)), [1, 1], E[:2])
    assert ids.tolist() == [1, 2]


@pytest.mark.parametrize("gap, relinked", [(1, True), (3, True), (4, False)])
def test_a_gap_of_at_most_max_missed_frames_relinks(gap, relinked):
    tr = InstanceTracker(max_missed=3)
    tr.update(rles(square(0, 0)), [1], E[:1])
    for _ in range(gap):
        tr.update([], [], np.zeros((0, 4)))
    ids = tr.update(rles(square(1, 1)), [1], E[:1])
    assert (ids.tolist() == [1]) is relinked


def test_a_dissimilar_instance_is_not_matched():
    tr = InstanceTracker(embed_weight=1.0, max_cost=1.0, class_gate=True)
    tr.update(rles(square(0, 0)), [1], E[:1])
    # same place, orthogonal embedding: cost 0 + 1 * (1 - 0) = 1.0 passes; opposite: 2.0 does not
    assert tr.update(rles(square(0, 0)), [1], E[1:2]).tolist() == [1]
    assert tr.update(rles(square(0, 0)), [1], -E[1:2]).tolist() == [2]
    # another class at the same place never joins the track (class gate)
    assert tr.update(rles(square(0, 0)), [2], -E[1:2]).tolist() == [3]
    # without the gate (the default) it does
    free = InstanceTracker()
    free.update(rles(square(0, 0)), [1], E[:1])
    assert free.update(rles(square(0, 0)), [2], E[:1]).tolist() == [1]


def test_tracks_become_video_level_results():
    vt = VideoTracks(InstanceTracker(embed_weight=0.0), score_threshold=0.3)
    frame = lambda masks, labels, scores: {  # noqa: E731
        "boxes": np.zeros((len(masks), 4)), "labels": np.array(labels), "scores": np.array(scores),
        "masks": np.array(masks).reshape(-1, 40, 60), "embeddings": np.zeros((len(masks), 4))}
    vt.add(frame([square(0, 0)], [1], [0.9]))
    vt.add(frame([square(1, 0), square(40, 20)], [1, 2], [0.7, 0.2]))  # the second is below the threshold
    vt.add(frame([], [], []))
    vt.add(frame([square(2, 0)], [1], [0.5]))
    (track,) = vt.results(video_id=7)
    assert track["video_id"] == 7 and track["category_id"] == 1
    assert track["score"] == pytest.approx((0.9 + 0.7 + 0.5) / 3)
    assert [s is None for s in track["segmentations"]] == [False, False, True, False]
    assert mask_utils.decode(track["segmentations"][1]).astype(bool).tolist() == square(1, 0).tolist()


def test_the_category_is_the_majority_of_frame_labels():
    vt = VideoTracks(InstanceTracker(embed_weight=0.0, class_gate=False), score_threshold=0.0)
    for label, score in ((2, 0.9), (1, 0.5), (1, 0.5)):
        vt.add({"boxes": np.zeros((1, 4)), "labels": np.array([label]), "scores": np.array([score]),
                "masks": square(0, 0)[None], "embeddings": np.zeros((1, 4))})
    assert vt.results(1)[0]["category_id"] == 1


# the evaluator on video-level tracks --------------------------------------------------------
def _ground_truth_results(videos):
    out = []
    for v in videos:
        tracks = {}
        for t, tg in enumerate(v.targets):
            for j, tid in enumerate(tg.track_ids):
                tr = tracks.setdefault(int(tid), {"video_id": v.meta["id"], "category_id": int(tg.labels[j]),
                                                  "score": 1.0, "segmentations": [None] * len(v)})
                tr["segmentations"][t] = tg.masks[j]
        out += list(tracks.values())
    return out


def test_ground_truth_as_results_scores_1_and_an_identity_switch_halfway_lowers_it(tmp_path):
    cfg = tiny_vis_config(tmp_path)
    videos = read_split(cfg.data, cfg.data.val_split)
    cats = [{"id": c, "name": str(c)} for c in (1, 2, 3)]
    perfect = _ground_truth_results(videos)
    assert evaluate_ytvis(videos, cats, perfect)["ap"] == pytest.approx(1.0)
    # swap the second halves of two tracks of one video
    switched = json.loads(json.dumps(perfect))
    v = videos[0]
    a, b = [r for r in switched if r["video_id"] == v.meta["id"]][:2]
    half = len(v) // 2
    a["segmentations"][half:], b["segmentations"][half:] = b["segmentations"][half:], a["segmentations"][half:]
    assert evaluate_ytvis(videos, cats, switched)["ap"] < 0.95


# the model ---------------------------------------------------------------------------------
def _plain_mask_rcnn(seg):
    """torchvision's MaskRCNN assembled from the segmenter's own parts (its weights)."""
    from torchvision.models.detection import MaskRCNN
    plain = MaskRCNN(seg.backbone, num_classes=None, rpn_anchor_generator=seg.rpn.anchor_generator,
                     box_roi_pool=seg.roi_heads.box_roi_pool, box_head=seg.roi_heads.box_head,
                     box_predictor=seg.roi_heads.box_predictor, mask_roi_pool=seg.roi_heads.mask_roi_pool,
                     mask_head=seg.roi_heads.mask_head, mask_predictor=seg.roi_heads.mask_predictor,
                     min_size=seg.transform.min_size, max_size=seg.transform.max_size,
                     image_mean=seg.transform.image_mean, image_std=seg.transform.image_std,
                     rpn_batch_size_per_image=seg.rpn.fg_bg_sampler.batch_size_per_image,
                     box_batch_size_per_image=seg.roi_heads.fg_bg_sampler.batch_size_per_image)
    plain.load_state_dict({k: v for k, v in seg.state_dict().items() if not k.startswith("embed_head.")})
    return plain


def test_prompts_off_is_torchvision_mask_rcnn_with_the_same_weights(tmp_path):
    cfg = tiny_vis_config(tmp_path, "model.prompting=false")
    seg = SegmentationTask().build_model(cfg)
    plain = _plain_mask_rcnn(seg)
    seg.roi_heads.score_thresh = plain.roi_heads.score_thresh = 0.0  # random weights: keep every box
    frames = [torch.rand(3, 64, 96), torch.rand(3, 64, 96)]
    seg.eval(), plain.eval()
    with torch.no_grad():
        ours, theirs = seg(frames), plain(frames)
    for o, p in zip(ours, theirs):
        assert len(o["boxes"]) > 0
        for k in ("boxes", "labels", "scores", "masks"):
            torch.testing.assert_close(o[k], p[k])
    # training: the same losses (mask loss included) from the same random state
    dataset = SegmentationTask().train_dataset(cfg)
    batch = dataset.collate([dataset[0], dataset[1]])
    seg.train(), plain.train()
    torch.manual_seed(1)
    ours = seg(batch["images"], batch["targets"])
    torch.manual_seed(1)
    theirs = plain(batch["images"], batch["targets"])
    # the association head's losses come after torchvision's (the same random draws before them)
    assert set(ours) == set(theirs) | {"loss_track", "loss_track_aux"} and set(theirs) >= {"loss_mask", "loss_classifier"}
    for k in theirs:
        torch.testing.assert_close(ours[k], theirs[k])


def test_an_image_alone_or_in_a_batch_gives_the_same_instances(tmp_path):
    seg = SegmentationTask().build_model(tiny_vis_config(tmp_path)).eval()
    seg.roi_heads.score_thresh = 0.0
    images = [torch.rand(3, 64, 96) for _ in range(2)]
    support = [torch.rand(2, 3, 64, 96) for _ in range(2)]
    with torch.no_grad():
        both = seg(images, support=support)
        alone = [seg([images[i]], support=[support[i]])[0] for i in range(2)]
    for b, a in zip(both, alone):
        assert len(a["boxes"]) > 0
        for k in ("boxes", "scores", "masks", "embeddings"):
            torch.testing.assert_close(b[k], a[k], atol=2e-4, rtol=1e-4)


def test_one_training_step_updates_the_mask_head_and_the_prompts(tmp_path):
    out = train(tiny_vis_config(tmp_path), SegmentationTask(), max_iterations=1)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["loss_mask"] > 0 and np.isfinite(log[0]["loss"])


def _untrained_run(tmp_path, *extra):
    """A run folder holding an untrained segmenter that keeps every instance (score 0)."""
    cfg = tiny_vis_config(tmp_path, "segmentation.score_threshold=0.0", "segmentation.init_score=0.0", *extra)
    return train(cfg, SegmentationTask(), max_iterations=1), cfg


def _kept_instances(seg, cfg, video, mode):
    seen = []
    segment_video(seg, video, cfg, mode, on_frame=lambda t, kept: seen.append(kept))
    return seen


def test_causal_outputs_up_to_t_ignore_later_frames(tmp_path):
    out, cfg = _untrained_run(tmp_path, "data.test_policy=causal", "data.test_refresh_every=2")
    seg, cfg = SegmentationTask().load(out)
    video, _, _ = synth_video(SynthConfig(videos=1, frames=6, width=96, height=64, seed=3, min_objects=2), 0)
    changed, _, _ = synth_video(SynthConfig(videos=1, frames=6, width=96, height=64, seed=4, min_objects=2), 0)
    t = 3
    video.meta["id"] = changed.meta["id"] = 1
    mixed_frames = [video.frames[i] for i in range(t + 1)] + [changed.frames[i] for i in range(t + 1, 6)]
    from stpn.data.types import ArrayFrames, Video
    mixed = Video(video.name, ArrayFrames(mixed_frames), video.width, video.height, video.targets, meta={"id": 1})
    a, b = _kept_instances(seg, cfg, video, "causal"), _kept_instances(seg, cfg, mixed, "causal")
    assert sum(len(f["scores"]) for f in a[:t + 1]) > 0
    for fa, fb in zip(a[:t + 1], b[:t + 1]):
        np.testing.assert_array_equal(fa["masks"], fb["masks"])
        np.testing.assert_array_equal(fa["track_ids"], fb["track_ids"])
        np.testing.assert_allclose(fa["scores"], fb["scores"])
    assert any(not np.array_equal(fa["masks"], fb["masks"]) for fa, fb in zip(a[t + 1:], b[t + 1:]))


def test_a_stream_gives_the_same_results_as_one_pass_over_the_video(tmp_path):
    from stpn.detection.inference import predict_stream
    from stpn.segmentation.inference import convert_of
    out, cfg = _untrained_run(tmp_path, "data.test_policy=causal", "data.test_refresh_every=2")
    seg, cfg = SegmentationTask().load(out)
    video = read_split(cfg.data, cfg.data.val_split)[0]
    one_pass = segment_video(seg, video, cfg)
    d, o = cfg.data, cfg.segmentation
    tracks = new_tracks(cfg)
    stream = predict_stream(seg, (video.frames[t] for t in range(len(video))), d.test_num_support, d.test_stride,
                            d.test_refresh_every, "cpu", o.test_min_size, o.test_max_size,
                            convert=convert_of(cfg))
    for frame in stream:
        tracks.add(frame)
    streamed = tracks.results(video.meta["id"])
    assert len(one_pass) > 0
    assert json.dumps(streamed) == json.dumps(one_pass)


def test_eval_writes_results_with_one_entry_per_frame_and_scores_them(tmp_path, capsys):
    out, cfg = _untrained_run(tmp_path)
    for mode in ("local", "global", "causal"):
        assert main(["eval", "--weights", str(out), "--mode", mode, "--out", str(tmp_path / mode)]) == 0
    metrics = json.loads((tmp_path / "local" / "metrics.json").read_text())
    assert set(metrics) >= {"ap_all", "ap50_all", "ap_deteriorated", "ap50_deteriorated", "ms_per_frame"}
    assert set(metrics["all"]) >= {"ap", "ap50", "ap75", "aps", "apm", "apl", "ar1", "ar10"}
    # per-frame AP and identity switches beside the video AP, on all, deteriorated and clean frames
    assert set(metrics) >= {"frame_ap50_all", "frame_ap50_deteriorated", "frame_ap50_clean", "id_switches_all",
                            "id_switches_deteriorated"}
    assert metrics["frame_ap"]["all"]["images"] == sum(len(v) for v in read_split(cfg.data, cfg.data.val_split))
    assert (metrics["frame_ap"]["deteriorated"]["images"] + metrics["frame_ap"]["clean"]["images"]
            == metrics["frame_ap"]["all"]["images"])
    assert metrics["switches"]["deteriorated"]["matches"] <= metrics["switches"]["all"]["matches"]
    videos = read_split(cfg.data, cfg.data.val_split)
    lengths = {v.meta["id"]: len(v) for v in videos}
    results = json.loads((tmp_path / "local" / "results.json").read_text())
    assert results and all(set(r) == {"video_id", "category_id", "score", "segmentations"} for r in results)
    assert all(len(r["segmentations"]) == lengths[r["video_id"]] for r in results)
    assert {r["category_id"] for r in results} <= {1, 2, 3}  # 1-based, as the categories
    for r in results:
        for s in r["segmentations"]:
            assert s is None or list(s["size"]) == [64, 96]
    with zipfile.ZipFile(tmp_path / "local" / "results.zip") as zf:
        assert json.loads(zf.read("results.json")) == results
    # the file scores the same through `stpn evaluate ytvis`
    assert main(["evaluate", "ytvis", "--gt", str(tmp_path / "data" / "val" / "instances.json"), "--results",
                 str(tmp_path / "local" / "results.json"), "--json", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["ap"] == pytest.approx(metrics["all"]["ap"])
    capsys.readouterr()


def test_segment_writes_video_results_and_pngs_for_an_mp4_and_a_frame_folder(tmp_path):
    out, cfg = _untrained_run(tmp_path)
    video, _, _ = synth_video(SynthConfig(videos=1, frames=5, width=96, height=64, seed=9, min_objects=2), 0)
    frames = [video.frames[t] for t in range(5)]
    clip = write_video(tmp_path / "clip.mp4", frames, fps=10)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{t:05d}.jpg")
    for source, mode in ((clip, "causal"), (folder, "local")):
        name = f"{source.stem}_{mode}"
        ann, res, pngs = tmp_path / f"{name}.mp4", tmp_path / f"{name}.json", tmp_path / f"{name}_png"
        assert main(["segment", str(source), "--weights", str(out), "--out", str(ann), "--json", str(res),
                     "--png-dir", str(pngs), "--mode", mode]) == 0
        assert len(open_video(ann)) == 5
        tracks = json.loads(res.read_text())
        assert tracks and all(len(t["segmentations"]) == 5 for t in tracks)
        files = sorted(pngs.glob("*.png"))
        assert len(files) == 5
        # a pixel holds id k only inside track k's mask of that frame; a pixel any mask covers is not 0
        for t, file in enumerate(files):
            ids = np.array(Image.open(file))
            assert ids.shape == (64, 96)
            masks = {r["track_id"]: mask_utils.decode(r["segmentations"][t]).astype(bool)
                     for r in tracks if r["segmentations"][t] is not None}
            for k in set(np.unique(ids)) - {0}:
                assert masks[k][ids == k].all()
            covered = np.any(list(masks.values()), axis=0) if masks else np.zeros((64, 96), bool)
            assert (ids[covered] > 0).all() and (ids[~covered] == 0).all()


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    from stpn.data.types import AnnotationError, FrameTargets
    from stpn.segmentation.task import SegmentationClips
    cfg = tiny_vis_config(tmp_path)
    dataset = SegmentationTask().train_dataset(cfg)
    sample = dataset[0][0]  # the key frame of a pair
    tg = sample.targets
    wrong = FrameTargets(tg.boxes, tg.labels, tg.track_ids, masks=rles(*[square(0, 0, h=32, w=48)] * len(tg)))
    sample.targets = wrong
    with pytest.raises(ValueError, match=r"video synth_\d+_\d+ frame \d+: mask 0 is 48x32, the frame 96x64"):
        SegmentationClips.collate([sample])
    videos = read_split(cfg.data, cfg.data.val_split)
    cats = [{"id": c, "name": str(c)} for c in (1, 2, 3)]
    good = _ground_truth_results(videos)[0]
    with pytest.raises(AnnotationError, match=r"results\[0\]: video_id 99 is not in the ground truth"):
        evaluate_ytvis(videos, cats, [dict(good, video_id=99)])
    with pytest.raises(AnnotationError, match=r"results\[0\]: 3 segmentations for video 1 of 6 frames"):
        evaluate_ytvis(videos, cats, [dict(good, segmentations=good["segmentations"][:3])])
    with pytest.raises(AnnotationError, match=r"mask size \[32, 48\] differs from the video's \[64, 96\]"):
        small = [encode(square(0, 0, h=32, w=48))] * 6
        evaluate_ytvis(videos, cats, [dict(good, segmentations=small)])
    with pytest.raises(ValueError, match="the segmenter uses torchvision's conventions"):
        from conftest import tiny_stpn
        from stpn.segmentation.model import STPNSegmenter
        STPNSegmenter(tiny_stpn(), 3, conventions="mmdet")


def test_split_ytvis_is_deterministic_disjoint_and_readable(tmp_path, capsys):
    from stpn.data.synth import write_synth
    from stpn.data.ytvis import read_ytvis
    write_synth(tmp_path / "full", "ytvis", SynthConfig(videos=10, frames=3, width=48, height=32), progress=False)
    args = ["data", "split-ytvis", "--json", str(tmp_path / "full" / "instances.json"), "--val-fraction", "0.3"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / x / "split.json").read_text()) for x in "ab")
    assert a["train"] == b["train"] and len(a["val"]) == 3
    assert sorted(a["train"] + a["val"]) == list(range(1, 11)) and not set(a["train"]) & set(a["val"])
    full, _ = read_ytvis(tmp_path / "full" / "instances.json")
    train, _ = read_ytvis(tmp_path / "a" / "train" / "instances.json")
    val, cats = read_ytvis(tmp_path / "a" / "val" / "instances.json")
    assert {v.meta["id"] for v in val} == set(a["val"]) and len(cats) == 3
    by_id = {v.meta["id"]: v for v in full}
    for v in train + val:  # the frames and the masks are the source's
        np.testing.assert_array_equal(v.frames[1], by_id[v.meta["id"]].frames[1])
        assert v.targets[1].masks == by_id[v.meta["id"]].targets[1].masks
    assert main([*args, "--out", str(tmp_path / "c"), "--frames", str(tmp_path / "nowhere")]) == 2
    assert "frame folder not found" in capsys.readouterr().err


def test_the_support_swap_diagnostic_runs_on_a_segmenter_with_one_object_videos(tmp_path, capsys):
    from stpn.detection import diagnostics
    out, cfg = _untrained_run(tmp_path, "data.synth.deteriorated=0.5")
    diagnostics.main(["--weights", str(out)])
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts["frames"] > 0 and 0 <= counts["own_right"] <= counts["frames"]
    # the multi-object run's generator settings, one object per video, in the run folder
    made = json.loads((out / "swap_data" / "synth_val.json").read_text())
    assert made["min_objects"] == made["max_objects"] == 1 and made["width"] == 96


def test_quick_vis_demo_writes_report_chart_and_video(tmp_path):
    assert main(["demo", "--task", "vis", "--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    for name in ("stpn", "baseline"):
        assert set(report[name]) >= {"ap_all", "ap50_all", "ap_deteriorated", "ap50_deteriorated", "train_seconds",
                                     "ms_per_frame"}
        assert 0 <= report[name]["ap50_all"] <= 1 and report[name]["train_seconds"] > 0
        assert {"frame_ap50_all", "frame_ap50_deteriorated", "id_switches_all"} <= set(report[name])
    # the single-frame model also tracked with its untrained box features: what the trained head lifts
    assert 0 <= report["baseline"]["box_features_ap50_all"] <= 1
    assert (tmp_path / "baseline" / "eval_box_features" / "metrics.json").is_file()
    assert report["config"]["task"] == "segmentation" and report["pretrain_config"]["task"] == "classification"
    assert report["config"]["model"]["weights"] == str(tmp_path / "pretrain" / "model.safetensors")
    margins = report["stpn_minus_baseline_points"]
    assert margins["ap50_all"] == pytest.approx(100 * (report["stpn"]["ap50_all"] - report["baseline"]["ap50_all"]))
    assert (tmp_path / "mask_ap50.png").stat().st_size > 1000
    assert len(open_video(tmp_path / "stpn_val0.mp4")) == 12
    metrics = json.loads((tmp_path / "stpn" / "eval" / "metrics.json").read_text())
    assert metrics["ap50_all"] == report["stpn"]["ap50_all"]


def test_mask_nms_drops_duplicates_and_parts_of_any_class_and_keeps_neighbours():
    from stpn.segmentation.inference import mask_nms
    whole, part, dup, other = square(0, 0, 20), square(5, 5, 8), square(1, 1, 20), square(30, 10, 10)
    # sorted by score: the part (inside the whole: IoU 0.16, but all of it overlaps) and the
    # near-duplicate go; the neighbour that does not overlap stays
    assert mask_nms(rles(whole, part, dup, other), 0.5) == [0, 3]
    assert mask_nms(rles(whole, part, dup, other), 1.0) == [0, 1, 2, 3]
    empty = np.zeros_like(whole)
    assert mask_nms(rles(empty), 0.5) == [] and mask_nms(rles(other, empty), 0.5) == [0] and mask_nms([], 0.5) == []
    vt = VideoTracks(InstanceTracker(embed_weight=0.0), score_threshold=0.1, nms_overlap=0.5)
    kept = vt.add({"boxes": np.zeros((3, 4)), "labels": np.array([1, 2, 1]), "scores": np.array([0.6, 0.9, 0.5]),
                   "masks": np.stack([whole, dup, other]), "embeddings": np.zeros((3, 4))})
    assert kept["labels"].tolist() == [2, 1] and kept["scores"].tolist() == [0.9, 0.5]  # one per object, best first


def test_a_frame_subset_leaves_out_result_tracks_with_nothing_in_it():
    from stpn.data import ArrayFrames, FrameTargets, Video
    m = encode(square(0, 0))
    targets = [FrameTargets([[0, 0, 10, 10]], [1], [1], masks=[m]) for _ in range(3)]
    v = Video("v", ArrayFrames([np.zeros((40, 60, 3), np.uint8)] * 3), 60, 40, targets, meta={"id": 1})
    cats = [{"id": 1, "name": "a"}]
    good = {"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [None, m, None]}
    elsewhere = {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [m, None, m]}
    # on frame 1 only, the track seen on frames 0 and 2 is not there (not a false positive)
    assert evaluate_ytvis([v], cats, [good, elsewhere], frames={1: [1]})["ap"] == pytest.approx(1.0)
    # on all frames both count: the track of frames 0 and 2 has IoU 2/3 with the ground truth, the other 1/3
    assert evaluate_ytvis([v], cats, [good, elsewhere])["ap75"] < 1.0
