"""The quasi-dense association head and its tracker (issue 30): the losses on hand-computed
cases, the RoI sampler, bi-softmax matching, the track memory through a gap, frame pairs for
training, the per-frame scores, and the COCO Mask R-CNN's mask head through the released layout."""
import math

import numpy as np
import pytest
import torch

from conftest import tiny_vis_config
from stpn.association import QuasiDenseTracker
from stpn.data.types import FrameTargets, Video
from stpn.evaluation.vis_frames import frame_mask_ap, id_switches
from stpn.segmentation.embed import margin_l2_loss, multi_positive_cross_entropy, pair_loss, sample_rois
from stpn.segmentation.inference import encode
from stpn.segmentation.task import PairedSegmentationClips, SegmentationTask


def square(x0, y0, side=10, h=40, w=60):
    m = np.zeros((h, w), bool)
    m[y0:y0 + side, x0:x0 + side] = True
    return m


# losses ------------------------------------------------------------------------------------
def test_multi_positive_cross_entropy_on_a_hand_computed_case():
    logits = torch.tensor([[3.0, 1.0, 0.0, 2.0],   # positives 3 and 2, negatives 1 and 0
                           [0.5, 2.0, 1.0, 0.0],   # one positive (2.0): log(1 + e^-1.5 + e^-1 + e^-2)
                           [1.0, 1.0, 1.0, 1.0],   # no positive: not counted
                           [4.0, 4.0, 0.0, 0.0]], requires_grad=True)  # positives only here... no: see below
    positive = torch.tensor([[True, False, False, True], [False, True, False, False],
                             [False, False, False, False], [True, True, True, True]])  # all positive: log(1 + 0)
    first = math.log(1 + math.exp(1 - 3) + math.exp(0 - 3) + math.exp(1 - 2) + math.exp(0 - 2))
    second = math.log(1 + math.exp(0.5 - 2) + math.exp(1 - 2) + math.exp(0 - 2))
    loss = multi_positive_cross_entropy(logits, positive)
    assert loss.item() == pytest.approx((first + second + 0.0) / 3, rel=1e-6)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[2].abs().sum() == 0 and logits.grad[3].abs().sum() == 0
    assert multi_positive_cross_entropy(logits, torch.zeros_like(positive)).item() == 0


def test_margin_l2_loss_keeps_the_hardest_negatives_on_a_hand_computed_case():
    cosine = torch.tensor([[0.9, 0.5, 0.05, 0.3]])
    positive = torch.tensor([[True, False, False, False]])
    # positive: (0.9 - 1)^2 = 0.01; negatives after the 0.1 margin: 0.4^2, 0, 0.2^2; one per positive: 0.16
    assert margin_l2_loss(cosine, positive, neg_pos_ub=1).item() == pytest.approx((0.01 + 0.16) / 2)
    assert margin_l2_loss(cosine, positive, neg_pos_ub=3).item() == pytest.approx((0.01 + 0.16 + 0 + 0.04) / 4)
    assert margin_l2_loss(cosine, torch.zeros_like(positive)).item() == 0


def test_pair_loss_is_low_when_instances_match_and_high_when_swapped():
    a, b = torch.tensor([5.0, 0.0]), torch.tensor([0.0, 5.0])
    key, key_ids = torch.stack([a, b]), torch.tensor([1, 2])
    good = pair_loss(key, key_ids, torch.stack([a, b]), torch.tensor([1, 2]))
    bad = pair_loss(key, key_ids, torch.stack([a, b]), torch.tensor([2, 1]))
    assert good["loss_track"] < 1e-4 and good["loss_track_aux"] == 0
    assert bad["loss_track"].item() == pytest.approx(0.25 * math.log(1 + math.exp(25)), rel=1e-5)
    assert bad["loss_track_aux"].item() == pytest.approx((1 + 0.9 ** 2) / 2)


def test_rois_are_assigned_by_iou_to_instances_with_a_band_left_out():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    proposals = torch.tensor([[0.0, 0.0, 10.0, 9.0],    # IoU 0.9 with the first: its RoI
                              [0.0, 0.0, 10.0, 6.0],    # IoU 0.6: neither positive nor negative
                              [20.0, 20.0, 30.0, 30.0]])  # nothing: a negative
    rois, ids = sample_rois(proposals, gt, torch.tensor([7, 9]), num=16, generator=torch.Generator().manual_seed(0))
    got = {(tuple(r.tolist()), int(i)) for r, i in zip(rois, ids)}
    assert got == {((0.0, 0.0, 10.0, 10.0), 7), ((50.0, 50.0, 60.0, 60.0), 9), ((0.0, 0.0, 10.0, 9.0), 7),
                   ((20.0, 20.0, 30.0, 30.0), -1)}
    # at most half positives, and negatives at most 3 per positive
    many = torch.cat([torch.tensor([[0.0, 0.0, 10.0, 10.0]]).repeat(20, 1), torch.tensor([[30.0, 0, 40, 10]]).repeat(40, 1)])
    rois, ids = sample_rois(many, gt[:1], torch.tensor([1]), num=16)
    assert (ids >= 0).sum() == 8 and (ids < 0).sum() == 8
    rois, ids = sample_rois(many[-40:], gt[:1], torch.tensor([1]), num=64)
    assert (ids >= 0).sum() == 1 and (ids < 0).sum() == 3


# the tracker -------------------------------------------------------------------------------
def test_bi_softmax_scores_match_the_formula_and_pick_by_embedding():
    tr = QuasiDenseTracker(match_score=0.5, init_score=0.5, iou_weight=0.0)
    first = tr.update([encode(square(0, 0)), encode(square(40, 20))], [1, 1], np.array([[3.0, 0.0], [0.0, 3.0]]),
                      [0.9, 0.9])
    assert first.tolist() == [1, 2]
    # next frame: the two swapped places (masks say nothing with iou_weight 0): embeddings decide
    e = np.array([[0.5, 2.0], [2.5, 0.2]])
    f = np.array([[3.0, 0.0], [0.0, 3.0]])
    dots = e @ f.T
    d2t = np.exp(dots) / np.exp(dots).sum(1, keepdims=True)
    t2d = np.exp(dots) / np.exp(dots).sum(0, keepdims=True)
    cos = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ (f / 3).T
    expected = ((d2t + t2d) / 2 + cos) / 2
    masks = [encode(square(40, 20)), encode(square(0, 0))]
    np.testing.assert_allclose(np.where(expected < 0.5, -np.inf, expected), tr.scores(masks, [1, 1], e))
    assert tr.update(masks, [1, 1], e, [0.9, 0.9]).tolist() == [2, 1]
    # the memory moved to 0.2 old + 0.8 new
    np.testing.assert_allclose(tr.tracks[2]["embedding"], 0.2 * f[1] + 0.8 * e[0])


def test_mask_iou_adds_to_the_score_and_a_lone_pair_is_not_matched_by_the_softmax_alone():
    tr = QuasiDenseTracker(match_score=0.5, iou_weight=0.5)
    tr.update([encode(square(0, 0))], [1], np.array([[1.0, 0.0]]), [0.9])
    # one instance, one track: bi-softmax is 1 whatever the embedding; an orthogonal one scores (1 + 0) / 2
    far = [encode(square(40, 20))]
    assert tr.scores(far, [1], np.array([[0.0, 1.0]]))[0, 0] == pytest.approx(0.5)
    assert tr.scores(far, [1], np.array([[-1.0, 0.0]]))[0, 0] == -np.inf  # (1 - 1) / 2 = 0 < 0.5
    same_place = [encode(square(0, 0))]
    assert tr.scores(same_place, [1], np.array([[0.0, 1.0]]))[0, 0] == pytest.approx(0.5 + 0.5 * 1.0)


@pytest.mark.parametrize("max_missed, kept", [(30, True), (5, True), (4, False)])
def test_the_memory_keeps_an_identity_through_a_5_frame_gap(max_missed, kept):
    tr = QuasiDenseTracker(max_missed=max_missed, iou_weight=0.5)
    target, other = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    assert tr.update([encode(square(0, 0)), encode(square(40, 20))], [1, 2], np.stack([target, other]),
                     [0.9, 0.9]).tolist() == [1, 2]
    for _ in range(5):  # the target is occluded for 5 frames; the other object stays
        assert tr.update([encode(square(40, 20))], [2], other[None], [0.9]).tolist() == [2]
    # it comes back elsewhere (no mask overlap), a little changed
    back = tr.update([encode(square(10, 25)), encode(square(40, 20))], [1, 2],
                     np.stack([target + [0, 0.1, 0.1], other]), [0.9, 0.9])
    assert back.tolist() == ([1, 2] if kept else [3, 2])


def test_only_confident_instances_start_tracks():
    tr = QuasiDenseTracker(init_score=0.5)
    ids = tr.update([encode(square(0, 0)), encode(square(40, 20))], [1, 1], np.eye(2), [0.8, 0.3])
    assert ids.tolist() == [1, 0] and list(tr.tracks) == [1]
    # a low-scoring instance still continues a track it matches
    assert tr.update([encode(square(1, 0))], [1], np.eye(2)[:1], [0.2]).tolist() == [1]


# training data -----------------------------------------------------------------------------
def test_frame_pairs_come_from_one_video_within_the_range(tmp_path):
    cfg = tiny_vis_config(tmp_path)
    data = SegmentationTask().train_dataset(cfg)
    assert isinstance(data, PairedSegmentationClips) and data.ref_range == cfg.segmentation.ref_range
    for i in range(len(data)):
        key, ref = data[i]
        assert key.video == ref.video and 0 < abs(key.index - ref.index) <= data.ref_range
        assert ref.support.shape[0] == key.support.shape[0]
    again = SegmentationTask().train_dataset(cfg)  # a fresh dataset draws the same pairs and supports
    assert [(k.index, r.index, r.support_index) for k, r in (again[i] for i in range(len(again)))] == \
        [(k.index, r.index, r.support_index) for k, r in (data[i] for i in range(len(data)))]
    data.set_epoch(1)  # another epoch, other draws
    assert [data[i][1].index for i in range(len(data))] != [again[i][1].index for i in range(len(again))]
    batch = data.collate([data[0], data[1]])
    assert len(batch["images"]) == 4 and [int(t["group"]) for t in batch["targets"]] == [0, 0, 1, 1]
    assert all(len(t["track_ids"]) == len(t["boxes"]) for t in batch["targets"])


def test_training_reaches_the_embedding_head_and_evaluation_gives_its_vectors(tmp_path):
    cfg = tiny_vis_config(tmp_path)
    task = SegmentationTask()
    seg = task.build_model(cfg).train()
    data = task.train_dataset(cfg)
    losses = task.loss(seg, data.collate([data[0], data[1]]), "cpu")
    assert losses["loss_track"] > 0 and losses["loss_track_aux"] >= 0
    sum(losses.values()).backward()
    assert seg.embed_head.embed.weight.grad.abs().sum() > 0
    seg.eval()
    seg.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        out = seg([torch.rand(3, 64, 96)], support=[torch.rand(2, 3, 64, 96)])[0]
    assert out["embeddings"].shape == (len(out["boxes"]), cfg.segmentation.embed_dim) and len(out["boxes"])
    # a batch without pairs is refused by name
    bad = data.collate([data[0]])
    bad["targets"][1]["group"] = torch.tensor(5)
    seg.train()
    with pytest.raises(ValueError, match="group 0 has 1 frames"):
        task.loss(seg, bad, "cpu")


# per-frame scores --------------------------------------------------------------------------
def _video(masks_per_frame, track_ids_per_frame):
    frames = np.zeros((len(masks_per_frame), 40, 60, 3), np.uint8)
    targets = [FrameTargets(np.zeros((len(m), 4)), np.ones(len(m)), ids, masks=[encode(x) for x in m])
               for m, ids in zip(masks_per_frame, track_ids_per_frame)]
    return Video("v", list(frames), 60, 40, targets, meta={"id": 1})


def test_per_frame_mask_ap_on_a_hand_computed_case():
    video = _video([[square(0, 0)], [square(20, 10)]], [[1], [1]])
    found = {1: [{"rles": [encode(square(0, 0))], "labels": [1], "scores": [0.9], "track_ids": [1]},
                 {"rles": [encode(square(45, 25))], "labels": [1], "scores": [0.8], "track_ids": [1]}]}
    cats = [{"id": 1, "name": "a"}]
    # 0.9: a hit, 0.8: a miss; two objects: precision 1 up to recall 0.5, 51 of COCO's 101 recall points
    assert frame_mask_ap([video], cats, found)["ap50"] == pytest.approx(51 / 101)
    assert frame_mask_ap([video], cats, found, frames={1: [0]})["ap50"] == pytest.approx(1.0)
    assert frame_mask_ap([video], cats, found, frames={1: [1]})["ap50"] == pytest.approx(0.0)
    # the right mask with the wrong class: a miss per class, a hit for the masks alone
    cats2 = cats + [{"id": 2, "name": "b"}]
    wrong = {1: [dict(found[1][0], labels=[2]), found[1][1]]}
    got = frame_mask_ap([video], cats2, wrong, frames={1: [0]})
    assert got["ap50"] == pytest.approx(0.0) and got["ap50_any_class"] == pytest.approx(1.0)
    with pytest.raises(Exception, match="1 frames, the video has 2"):
        frame_mask_ap([video], cats, {1: found[1][:1]})


def test_identity_switches_count_where_the_matched_track_changes():
    masks = [[square(0, 0), square(30, 20)]] * 4
    video = _video(masks, [[1, 2]] * 4)
    pred = [[5, 6], [5, 6], [7, 6], [7, 6]]  # ground truth 1 is predicted as 5, then as 7 from frame 2
    found = {1: [{"rles": [encode(m) for m in masks[t]], "labels": [1, 1], "scores": [0.9, 0.9], "track_ids": pred[t]}
                 for t in range(4)]}
    assert id_switches([video], found) == {"id_switches": 1, "matches": 8}
    assert id_switches([video], found, frames={1: [2]})["id_switches"] == 1
    assert id_switches([video], found, frames={1: [3]})["id_switches"] == 0
    # a prediction overlapping less than half is no match, so no switch either
    found[1][2]["rles"][0] = encode(square(6, 6))
    assert id_switches([video], found)["id_switches"] == 1  # now at frame 3 (5 -> 7)


# the COCO Mask R-CNN's mask head -----------------------------------------------------------
def test_the_mask_head_round_trips_through_the_released_layout(tmp_path):
    from stpn.detection.released import load_detector_checkpoint, ours_to_released
    cfg = tiny_vis_config(tmp_path, "model.prompting=false", "segmentation.association=box_features")
    source, target = (SegmentationTask().build_model(cfg) for _ in range(2))
    for p in source.parameters():
        torch.nn.init.normal_(p)
    sd = ours_to_released(source)
    names = {k for k in sd if ".mask_head." in k}
    n = len(cfg.segmentation.mask_layers)
    assert names == {f"detector.roi_head.mask_head.{x}" for i in range(n) for x in (f"convs.{i}.conv.weight",
                     f"convs.{i}.conv.bias")} | {f"detector.roi_head.mask_head.{x}.{y}" for x in ("upsample", "conv_logits")
                                               for y in ("weight", "bias")}
    logits = sd["detector.roi_head.mask_head.conv_logits.weight"]
    assert logits.shape[0] == cfg.segmentation.num_classes  # no background mask in mmdetection's layout
    plain = {k[len("detector."):]: v for k, v in sd.items()}  # a plain mmdetection Mask R-CNN (the COCO start)
    torch.save({"state_dict": plain}, tmp_path / "mask_rcnn.pth")
    load_detector_checkpoint(target, tmp_path / "mask_rcnn.pth")
    theirs, ours = target.state_dict(), source.state_dict()
    background = {"roi_heads.mask_predictor.mask_fcn_logits.": 1, "roi_heads.box_predictor.bbox_pred.": 4}
    for k, v in ours.items():
        rows = next((n for prefix, n in background.items() if k.startswith(prefix)), 0)
        assert (theirs[k][:rows] == 0).all()  # the background mask (and box rows), never used, are zero
        torch.testing.assert_close(theirs[k][rows:], v[rows:], msg=k)
    assert any(k.startswith("roi_heads.mask_head.") for k in ours)


# export ------------------------------------------------------------------------------------
def test_the_exported_segmenter_gives_the_segmenters_instances_and_tracks(tmp_path):
    from scipy.optimize import linear_sum_assignment

    from conftest import assert_same_detections
    from stpn.data.synth import SynthConfig, synth_video
    from stpn.detection.inference import predict_video
    from stpn.export import OnnxSegmenter, export_onnx
    from stpn.segmentation.inference import convert_of, segment_video
    cfg = tiny_vis_config(tmp_path, "segmentation.score_threshold=0.0", "segmentation.init_score=0.0")
    seg = SegmentationTask().build_model(cfg).eval()
    seg.roi_heads.score_thresh = 0.0  # random weights: keep every instance
    video, _, _ = synth_video(SynthConfig(videos=1, frames=4, width=96, height=64, max_objects=2), 0)
    export_onnx(seg, tmp_path / "onnx", size=(64, 96), num_support=2)
    onnx_seg = OnnxSegmenter(tmp_path / "onnx")
    o = cfg.segmentation
    ref = list(predict_video(seg, video, "local", 2, 1, 1, "cpu", o.test_min_size, o.test_max_size, convert=convert_of(cfg)))
    got = list(onnx_seg.predict_video(video, "local", 2, 1, 1, convert=convert_of(cfg)))
    assert sum(len(r["boxes"]) for r in ref) > 0
    for r, g in zip(ref, got):
        assert_same_detections(g, r, box_atol=1e-2, score_atol=1e-4, top_k=seg.roi_heads.detections_per_img)
        err = np.abs(g["boxes"][:, None].astype(float) - r["boxes"][None]).max(-1)
        rows, cols = linear_sum_assignment(err)
        for i, j in zip(rows, cols):
            if err[i, j] < 1e-2:  # the matched pair: same embedding, the same mask up to a few pixels
                np.testing.assert_allclose(g["embeddings"][i], r["embeddings"][j], atol=1e-3)
                assert (g["masks"][i] != r["masks"][j]).mean() < 0.01
    # whole videos into tracks, the exported graphs or the model
    a, b = segment_video(seg, video, cfg, "local"), segment_video(onnx_seg, video, cfg, "local")
    assert len(a) == len(b) > 0 and sorted(x["category_id"] for x in a) == sorted(x["category_id"] for x in b)


def test_per_frame_scores_read_the_instances_before_association():
    from stpn.segmentation.inference import VideoTracks
    tracks = VideoTracks(QuasiDenseTracker(init_score=0.5), score_threshold=0.1)
    frame = {"boxes": np.zeros((2, 4)), "labels": np.array([1, 2]), "scores": np.array([0.9, 0.3]),
             "masks": np.stack([square(0, 0), square(40, 20)]), "embeddings": np.eye(2)}
    kept = tracks.add(frame)
    assert kept["track_ids"].tolist() == [1] and len(kept["rles"]) == 1  # the 0.3 instance starts no track
    assert kept["detected"]["scores"].tolist() == [0.9, 0.3] and len(kept["detected"]["rles"]) == 2
