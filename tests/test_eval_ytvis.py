import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from stpn.cli import main
from stpn.data import AnnotationError, ArrayFrames, FrameTargets, Video, read_ytvis, write_ytvis, write_ytvis_results
from stpn.evaluation.ytvis import evaluate_ytvis, track_iou

H = W = 40
CATS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def rle(x0, y0, x1, y1, h=H, w=W):
    m = np.zeros((h, w), np.uint8, order="F")
    m[y0:y1, x0:x1] = 1
    r = mask_utils.encode(m)
    r["counts"] = r["counts"].decode()
    return r


def video(tracks, vid_id=1, length=2, h=H, w=W):
    """tracks: {track id: (category, [rle or None per frame])}"""
    targets = []
    for t in range(length):
        objs = [(tid, cat, segs[t]) for tid, (cat, segs) in tracks.items() if segs[t] is not None]
        targets.append(FrameTargets([mask_utils.toBbox(o[2]).tolist() for o in objs], [o[1] for o in objs],
                                    [o[0] for o in objs], masks=[o[2] for o in objs]))
    for tg in targets:  # xywh -> xyxy
        tg.boxes[:, 2:] += tg.boxes[:, :2]
    return Video(f"v{vid_id}", ArrayFrames([np.zeros((h, w, 3), np.uint8)] * length), w, h, targets, meta={"id": vid_id})


def test_track_iou_sums_intersections_and_unions_over_frames():
    a = [rle(0, 0, 10, 10), rle(0, 0, 10, 10)]  # 100 + 100
    b = [rle(0, 0, 10, 10), None]  # 100 in frame 0 only
    c = [rle(5, 0, 15, 10), rle(0, 0, 10, 10)]  # inter 50 then 100
    areas = lambda t: np.array([[mask_utils.area(m) if m else 0 for m in t]], float)  # noqa: E731
    assert track_iou([b], [a], areas(b), areas(a))[0, 0] == pytest.approx(100 / 200)
    assert track_iou([c], [a], areas(c), areas(a))[0, 0] == pytest.approx(150 / (150 + 100))


def test_ap_over_iou_thresholds_hand_computed():
    gt = video({1: (1, [rle(0, 0, 10, 10), rle(0, 0, 10, 10)])})
    half = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [rle(0, 0, 10, 10), None]}]
    result = evaluate_ytvis([gt], CATS, half)  # IoU 0.5: a match at 0.50 only, 1 of 10 thresholds
    assert result["ap50"] == pytest.approx(1.0) and result["ap75"] == pytest.approx(0.0)
    assert result["ap"] == pytest.approx(0.1) and result["ar1"] == pytest.approx(0.1)
    assert result["aps"] == pytest.approx(0.1) and result["apm"] is None  # mean area 100 < 128^2


def test_empty_predictions_score_zero_and_wrong_class_does_not_match():
    gt = video({1: (1, [rle(0, 0, 10, 10), rle(0, 0, 10, 10)])})
    assert evaluate_ytvis([gt], CATS, [])["ap"] == 0.0
    wrong = [{"video_id": 1, "category_id": 2, "score": 0.9, "segmentations": [rle(0, 0, 10, 10)] * 2}]
    assert evaluate_ytvis([gt], CATS, wrong)["ap"] == 0.0


def test_only_one_of_two_tracks_present_in_a_frame():
    gt = video({1: (1, [rle(0, 0, 10, 10), None]), 2: (1, [rle(20, 20, 30, 30), rle(20, 20, 30, 30)])})
    perfect = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [rle(0, 0, 10, 10), None]},
               {"video_id": 1, "category_id": 1, "score": 0.8, "segmentations": [rle(20, 20, 30, 30)] * 2}]
    assert evaluate_ytvis([gt], CATS, perfect)["ap"] == pytest.approx(1.0)
    # a prediction that also covers frame 1 for track 1 adds 100 to the union: IoU 0.5
    spill = [dict(perfect[0], segmentations=[rle(0, 0, 10, 10), rle(0, 0, 10, 10)]), perfect[1]]
    assert evaluate_ytvis([gt], CATS, spill)["ap50"] == pytest.approx(1.0)
    # at 0.75: FP (score 0.9) then TP: precision 0.5 on the 51 recall points <= 0.5, 0 above
    assert evaluate_ytvis([gt], CATS, spill)["ap75"] == pytest.approx(0.5 * 51 / 101)


def test_crowd_track_follows_the_official_ytvoseval_rule():
    """youtubevos/cocoapi's YTVOSeval ignores iscrowd in the IoU (plain spatio-temporal IoU) and only
    marks the crowd track ignored. Hand-worked: G1 a 10x10 track, G2 a 20x20 crowd track; D1 is G1
    exactly (score 0.8), D2 a 10x10 square inside G2 (score 0.95). Official: IoU(D2, G2) = 100/400
    = 0.25 < 0.5, so D2 matches nothing and is a false positive ranked before D1's true positive:
    precision 1/2 at every recall -> AP50 0.5. COCO's image rule (union = the detection's area)
    would give IoU 1.0, D2 matched to the crowd, ignored: AP50 1.0."""
    g1, g2 = [rle(0, 0, 10, 10)] * 2, [rle(20, 20, 40, 40)] * 2
    gt = video({1: (1, g1), 2: (1, g2)})
    gt.targets = [FrameTargets(tg.boxes, tg.labels, tg.track_ids, masks=tg.masks,
                               extra={"iscrowd": np.array([tid == 2 for tid in tg.track_ids])}) for tg in gt.targets]
    d1 = {"video_id": 1, "category_id": 1, "score": 0.8, "segmentations": g1}
    d2 = {"video_id": 1, "category_id": 1, "score": 0.95, "segmentations": [rle(25, 25, 35, 35)] * 2}
    result = evaluate_ytvis([gt], CATS, [d1, d2])
    assert result["ap50"] == pytest.approx(0.5)
    assert result["num_gt_tracks"] == 2
    # a detection that does overlap the crowd track enough (IoU 1) is ignored, not a false positive
    d3 = dict(d2, segmentations=g2)
    assert evaluate_ytvis([gt], CATS, [d1, d3])["ap50"] == pytest.approx(1.0)
    # the crowd track is never a miss: D1 alone still has recall 1
    assert evaluate_ytvis([gt], CATS, [d1])["ap50"] == pytest.approx(1.0)


def test_area_ranges_use_the_mean_area_over_non_empty_frames():
    h = w = 300
    big = rle(0, 0, 150, 150, h, w)  # 22500 px: medium (128^2 .. 256^2)
    gt = video({1: (1, [big, None])}, h=h, w=w)
    res = [{"video_id": 1, "category_id": 1, "score": 1.0, "segmentations": [big, None]}]
    result = evaluate_ytvis([gt], CATS, res)
    assert result["apm"] == pytest.approx(1.0) and result["aps"] is None and result["apl"] is None


def test_bad_results_raise():
    gt = video({1: (1, [rle(0, 0, 10, 10), rle(0, 0, 10, 10)])})
    with pytest.raises(AnnotationError, match="results\\[0\\]: video_id 7 is not in the ground truth"):
        evaluate_ytvis([gt], CATS, [{"video_id": 7, "category_id": 1, "score": 1, "segmentations": [None, None]}])
    with pytest.raises(AnnotationError, match="3 segmentations for video 1 of 2 frames"):
        evaluate_ytvis([gt], CATS, [{"video_id": 1, "category_id": 1, "score": 1, "segmentations": [None] * 3}])
    for score in (float("nan"), float("inf"), None, "0.9"):  # a NaN score would sort anywhere
        with pytest.raises(AnnotationError, match=r"results\[0\]: score must be a finite number"):
            evaluate_ytvis([gt], CATS, [{"video_id": 1, "category_id": 1, "score": score, "segmentations": [None, None]}])
    with pytest.raises(AnnotationError, match="unknown category_id 9"):
        evaluate_ytvis([gt], CATS, [{"video_id": 1, "category_id": 9, "score": 1, "segmentations": [None] * 2}])


@pytest.mark.parametrize("counts, message", [
    ("1234", "counts decode to .* a 40x40 mask has 1600: corrupt mask encoding"),
    ("P\x7f", "characters outside the encoding"),
    ("1é34", "characters outside the encoding"),  # not ASCII: was decoded as a '?' run
    ("0P", "end mid-number"),
    (7, "counts must be a string"),
])
def test_corrupt_mask_encodings_are_refused_naming_the_instance_and_frame(counts, message):
    gt = video({1: (1, [rle(0, 0, 10, 10), rle(0, 0, 10, 10)])})
    good = rle(0, 0, 10, 10)
    bad = {"size": list(good["size"]), "counts": counts}
    results = [{"video_id": 1, "category_id": 1, "score": 1, "segmentations": [good, None]},
               {"video_id": 1, "category_id": 1, "score": 1, "segmentations": [None, bad]}]
    with pytest.raises(AnnotationError, match=r"results\[1\], frame 1: .*" + message):
        evaluate_ytvis([gt], CATS, results)


def test_the_run_decoder_agrees_with_the_definition_of_coco_rle():
    from stpn.data.ytvis import rle_runs
    rng = np.random.default_rng(0)
    for t in range(100):
        h, w = rng.integers(1, 50, 2)
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        if t % 4 == 0:
            m[: h // 2] = 1  # long runs: multi-character numbers and negative deltas
        flat = m.flatten(order="F")  # column-major, runs alternate 0s and 1s starting with 0s
        edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
        expected = np.diff(np.concatenate([[0], edges]))
        got = rle_runs(mask_utils.encode(np.asfortranarray(m))["counts"].decode(), "t")
        assert got.tolist() == expected.tolist()


def test_json_round_trip_with_polygons_and_cli(tmp_path, capsys):
    gt = video({3: (2, [rle(0, 0, 10, 10), None]), 4: (1, [rle(5, 5, 20, 25), rle(6, 5, 21, 25)])})
    write_ytvis(tmp_path / "instances.json", [gt], CATS)
    back, cats = read_ytvis(tmp_path / "instances.json")
    assert cats == CATS and len(back) == 1 and back[0].frames[0].shape == (H, W, 3)
    assert [t.labels.tolist() for t in back[0].targets] == [[2, 1], [1]]
    assert [mask_utils.area(m) for m in back[0].targets[0].masks] == [100, 300]
    # polygons are converted to RLE on reading
    data = json.loads((tmp_path / "instances.json").read_text())
    data["annotations"][0]["segmentations"][0] = [[0, 0, 10, 0, 10, 10, 0, 10]]
    (tmp_path / "poly.json").write_text(json.dumps(data))
    poly, _ = read_ytvis(tmp_path / "poly.json", frames_root=tmp_path / "JPEGImages")
    assert mask_utils.area(poly[0].targets[0].masks[0]) == pytest.approx(100, abs=25)
    results = [{"video_id": 1, "category_id": a["category_id"], "score": 1.0, "segmentations": a["segmentations"]}
               for a in json.loads((tmp_path / "instances.json").read_text())["annotations"]]
    write_ytvis_results(tmp_path / "results.json", results, zip_path=tmp_path / "results.zip")
    out = tmp_path / "m.json"
    assert main(["evaluate", "ytvis", "--gt", str(tmp_path / "instances.json"), "--results",
                 str(tmp_path / "results.json"), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["ap"] == pytest.approx(1.0) and set(metrics) >= {"ap", "ap50", "ap75", "aps", "apm", "apl", "ar1", "ar10"}
    import zipfile
    assert zipfile.ZipFile(tmp_path / "results.zip").namelist() == ["results.json"]
    # a results file with a mask of another size (or a corrupt encoding) is refused, naming the file and the track
    results[1]["segmentations"][0] = {"size": [H // 2, W], "counts": results[1]["segmentations"][0]["counts"]}
    (tmp_path / "bad_results.json").write_text(json.dumps(results))
    capsys.readouterr()
    assert main(["evaluate", "ytvis", "--gt", str(tmp_path / "instances.json"), "--results",
                 str(tmp_path / "bad_results.json"), "--json", str(tmp_path / "never.json")]) != 0
    assert "bad_results.json: results[1], frame 0: mask size [20, 40] differs" in capsys.readouterr().err
    assert not (tmp_path / "never.json").exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("videos"), "missing top-level key 'videos'"),
    (lambda d: d["annotations"][0].update(video_id=99), r"annotations\[0\] \(id 1\): video_id 99 is not in 'videos'"),
    (lambda d: d["annotations"][0].update(category_id=42), "unknown category_id 42"),
    (lambda d: d["annotations"][0]["segmentations"].append(None), "3 segmentations for a video of 2 frames"),
    (lambda d: d["videos"][0].update(length=0, file_names=[]), "video 1 has length 0: a video needs at least one frame"),
])
def test_malformed_ground_truth_names_the_key(tmp_path, mutate, message):
    write_ytvis(tmp_path / "instances.json", [video({1: (1, [rle(0, 0, 10, 10), None])})], CATS, write_frames=False)
    data = json.loads((tmp_path / "instances.json").read_text())
    mutate(data)
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=message):
        read_ytvis(tmp_path / "bad.json")


def test_malformed_json_names_the_file(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AnnotationError, match="bad.json: malformed JSON"):
        read_ytvis(tmp_path / "bad.json")
