import numpy as np
import pytest

from stpn.data import AnnotationError, ArrayFrames, FrameTargets, Video, read_vid_detections, write_vid_detections
from stpn.evaluation.vid import box_iou, evaluate_vid, motion_iou, voc_ap


def video(per_frame, name="v", first_index=1):
    """per_frame: list of [(box, label, track), ...] -> Video with global indices first_index.."""
    targets = [FrameTargets([o[0] for o in objs], [o[1] for o in objs], [o[2] for o in objs]) for objs in per_frame]
    frames = ArrayFrames([np.zeros((100, 100, 3), np.uint8)] * len(per_frame))
    return Video(name, frames, 100, 100, targets, meta={"frame_indices": list(range(first_index, first_index + len(per_frame)))})


def test_iou_uses_the_plus_one_pixel_convention():
    # [0,0,9,9] is 10x10; [5,0,14,9] overlaps 5x10: 50 / 150
    assert box_iou(np.array([[0, 0, 9, 9]]), np.array([[5, 0, 14, 9]]))[0, 0] == pytest.approx(1 / 3)


def test_voc_all_point_ap_hand_computed():
    # TP, FP, TP with 2 ground truths: precision envelope 1 up to recall 0.5, 2/3 up to 1
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_ap_of_tp_fp_tp():
    gt = video([[([0, 0, 9, 9], 1, 1), ([50, 50, 59, 59], 1, 2)]])
    dets = np.array([[1, 1, 0.9, 0, 0, 9, 9], [1, 1, 0.8, 80, 80, 89, 89], [1, 1, 0.7, 50, 50, 59, 59]])
    result = evaluate_vid([gt], dets)
    assert result["ap50"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert result["per_class"]["1"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert result["per_class"]["2"] is None  # no ground truth: not in the mean


def test_score_ties_keep_file_order():
    gt = video([[([0, 0, 9, 9], 1, 1)]])
    tp, fp = [1, 1, 0.5, 0, 0, 9, 9], [1, 1, 0.5, 60, 60, 69, 69]
    assert evaluate_vid([gt], np.array([tp, fp]))["ap50"] == pytest.approx(1.0)
    assert evaluate_vid([gt], np.array([fp, tp]))["ap50"] == pytest.approx(0.5)


def test_duplicate_detection_is_a_false_positive():
    gt = video([[([0, 0, 9, 9], 1, 1), ([4, 0, 13, 9], 1, 2)]])
    # both copies sit on gt 2; gt 1 is at IoU 60 / 140 < 0.5: TP, FP with 2 ground truths
    dets = np.array([[1, 1, 0.9, 4, 0, 13, 9], [1, 1, 0.8, 4, 0, 13, 9]])
    assert evaluate_vid([gt], dets)["ap50"] == pytest.approx(0.5)


def test_a_detection_takes_the_ground_truth_of_largest_iou():
    gt = video([[([0, 0, 9, 9], 1, 1), ([2, 0, 11, 9], 1, 2)]])
    # det 1 overlaps gt 1 (IoU 0.67) and gt 2 (IoU 1): it must take gt 2, leaving gt 1 to
    # det 2, which overlaps only gt 1 enough (0.6 vs 0.33)
    dets = np.array([[1, 1, 0.9, 2, 0, 11, 9], [1, 1, 0.8, 0, 0, 5, 9]])
    assert evaluate_vid([gt], dets)["ap50"] == pytest.approx(1.0)


def test_empty_predictions_and_classes_without_ground_truth():
    gt = video([[([0, 0, 9, 9], 1, 1)], [([0, 0, 9, 9], 2, 2)]])
    result = evaluate_vid([gt], np.zeros((0, 7)))
    assert result["ap50"] == 0.0 and result["per_class"]["1"] == 0.0 and result["per_class"]["3"] is None
    only_class_3 = np.array([[1, 3, 0.9, 0, 0, 9, 9]])  # a class with no ground truth changes nothing
    assert evaluate_vid([gt], only_class_3)["ap50"] == 0.0


def test_devkit_rule_relaxes_the_threshold_for_small_boxes():
    gt = video([[([0, 0, 9, 9], 1, 1)]])  # 10x10: threshold min(0.5, 100 / 400) = 0.25
    det = np.array([[1, 1, 0.9, 3, 0, 12, 9]])  # IoU 70 / 130 = 0.538 -> both
    assert evaluate_vid([gt], det, rule="fixed")["ap50"] == 1.0
    det = np.array([[1, 1, 0.9, 5, 0, 14, 9]])  # IoU 1/3: devkit only
    assert evaluate_vid([gt], det, rule="fixed")["ap50"] == 0.0
    assert evaluate_vid([gt], det, rule="devkit")["ap50"] == 1.0


def test_motion_iou_is_the_mean_iou_with_the_track_within_ten_frames():
    boxes = [[0, 0, 9, 9], [5, 0, 14, 9], [10, 0, 19, 9]]
    gt = video([[(b, 1, 7)] for b in boxes])
    m = motion_iou(gt)
    iou01, iou02 = 1 / 3, 0.0
    assert m[0][0] == pytest.approx((iou01 + iou02) / 2)
    assert m[1][0] == pytest.approx(1 / 3)  # both neighbours at IoU 1/3


def test_motion_iou_ignores_frames_outside_the_window_and_absent_frames():
    frames = [[] for _ in range(12)]
    frames[0] = [([0, 0, 9, 9], 1, 1)]
    frames[11] = [([0, 0, 9, 9], 1, 1)]  # 11 frames away: not a neighbour
    frames[5] = [([0, 0, 9, 9], 1, 2), ([50, 50, 59, 59], 1, 3)]  # track 3 only here
    frames[6] = [([0, 0, 9, 9], 1, 2)]
    m = motion_iou(video(frames))
    assert np.isnan(m[0][0]) and np.isnan(m[11][0])
    assert m[5][0] == 1.0 and np.isnan(m[5][1]) and m[6][0] == 1.0


def test_motion_groups_ignore_detections_matched_to_other_groups():
    static = [0, 0, 9, 9]
    frames = [[(static, 1, 1), ([10 * t, 50, 10 * t + 9, 59], 1, 2)] for t in range(3)]  # track 2 jumps: fast
    gt = video(frames)
    dets = np.array([[2, 1, 0.9, 0, 0, 9, 9],            # TP on the static track
                     [2, 1, 0.8, 10, 50, 19, 59],        # TP on the fast track
                     [2, 1, 0.7, 70, 70, 79, 79]])       # FP
    result = evaluate_vid([gt], dets, frames={2})
    assert result["num_gt_slow"] == 1 and result["num_gt_fast"] == 1
    # slow: TP, (ignored), FP -> precision 1 at recall 1
    assert result["ap50_slow"] == pytest.approx(1.0)
    assert result["ap50_fast"] == pytest.approx(1.0)
    assert result["ap50_medium"] is None
    assert result["ap50"] == pytest.approx(1.0)  # TP, TP, FP: recall 1 reached at precision 1


def test_frame_subset_scores_only_those_frames():
    gt = video([[([0, 0, 9, 9], 1, 1)], [([0, 0, 9, 9], 1, 1)]])
    dets = np.array([[1, 1, 0.9, 0, 0, 9, 9]])  # frame 2 missed
    assert evaluate_vid([gt], dets)["ap50"] == pytest.approx(0.5)
    assert evaluate_vid([gt], dets, frames={1})["ap50"] == pytest.approx(1.0)
    assert evaluate_vid([gt], dets, frames={2})["ap50"] == pytest.approx(0.0)


def test_results_for_frames_not_in_the_ground_truth_raise():
    gt = video([[([0, 0, 9, 9], 1, 1)]])
    with pytest.raises(ValueError, match="row 2 is for frame index 9, which is not in the ground truth"):
        evaluate_vid([gt], np.array([[1, 1, 0.9, 0, 0, 9, 9], [9, 1, 0.9, 0, 0, 9, 9]]))


def test_detection_file_round_trip(tmp_path):
    dets = np.array([[1, 3, 0.25, 1.5, 2.25, 30, 40], [7, 30, 0.875, 0, 0, 99, 99]])
    write_vid_detections(tmp_path / "d.txt", dets)
    assert np.allclose(read_vid_detections(tmp_path / "d.txt"), dets)


@pytest.mark.parametrize("content, message", [
    ("1 1 0.5 0 0 9 9\n2 1 0.5 0 0 9\n", r"d.txt:2: expected 7 columns"),
    ("1 1 0.5 0 0 9 9 1\n" * 7, r"d.txt:1: expected 7 columns .* got 8"),  # 56 numbers: a multiple of 7
    ("1 1 0.5 0 0 9 9\n2 1 high 0 0 9 9\n", r"d.txt:2: not a number"),
    ("1 1 0.5 0 0 9 9\n\n2 31 0.5 0 0 9 9\n", r"d.txt:3: detection '2 31 0.5 0 0 9 9' has a class that is not in 1..30"),
    ("1 1 nan 0 0 9 9\n", r"d.txt:1: detection '1 1 nan 0 0 9 9' has a value that is not a finite number"),
    ("1 1 0.5 0 0 9 9\n1 1 0.5 0 0 inf 9\n", r"d.txt:2: .* not a finite number"),
    ("1 1 0.5 0 0 9 9\n1.5 1 0.5 0 0 9 9\n", r"d.txt:2: .* fractional frame index"),
    ("1 1 0.5 9 0 0 9\n1 1 0.5 0 9 9 0\n", r"d.txt:1: .* inverted box \(x2 < x1 or y2 < y1\) \(2 such rows\)"),
])
def test_bad_detection_files_name_the_line(tmp_path, content, message):
    (tmp_path / "d.txt").write_text(content)
    with pytest.raises(AnnotationError, match=message):
        read_vid_detections(tmp_path / "d.txt")


@pytest.mark.parametrize("row, message", [
    ([1, 1, np.nan, 0, 0, 9, 9], r"detection row 2: detection '1 1 nan 0 0 9 9' has a value that is not a finite number"),
    ([1, 1, 0.5, 0, 0, np.inf, 9], r"detection row 2: .* not a finite number"),
    ([1, 1, 0.5, 9, 0, 0, 9], r"detection row 2: .* inverted box"),
    ([1.5, 1, 0.5, 0, 0, 9, 9], r"detection row 2: .* fractional frame index"),
])
def test_evaluator_refuses_rows_it_cannot_score(row, message):
    # a NaN score would sort anywhere (here it turned AP50 1.0 into 0.5); swapped corners score 0 silently
    gt = video([[([0, 0, 9, 9], 1, 1)]])
    with pytest.raises(AnnotationError, match=message):
        evaluate_vid([gt], np.array([[1, 1, 0.9, 0, 0, 9, 9], row]))


def test_a_results_path_that_is_a_folder_is_named(tmp_path):
    import json

    from stpn.evaluation.got10k import evaluate_got10k
    from stpn.evaluation.ytvis import load_results
    with pytest.raises(FileNotFoundError, match=r"a folder; expected a devkit detection file"):
        read_vid_detections(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"a folder; expected results.json"):
        load_results(tmp_path)
    (tmp_path / "r.json").write_text(json.dumps([]))
    with pytest.raises(FileNotFoundError, match=r"r.json: a file; expected a results folder"):
        evaluate_got10k([], tmp_path / "r.json")


def test_margin_over_seeds_hand_worked(tmp_path):
    from stpn.evaluation.margins import margin_summary, strip_plot
    reports = {0: {"stpn": {"ap50_deteriorated": 0.321}, "baseline": {"ap50_deteriorated": 0.311}},
               1: {"stpn": {"ap50_deteriorated": 0.777}, "baseline": {"ap50_deteriorated": 0.313}},
               2: {"stpn": {"ap50_deteriorated": 0.350}, "baseline": {"ap50_deteriorated": 0.303}}}
    s = margin_summary(reports, ["ap50_deteriorated"])["ap50_deteriorated"]
    assert [round(r["margin"], 1) for r in s["per_seed"].values()] == [1.0, 46.4, 4.7]
    assert s["mean"] == pytest.approx((1.0 + 46.4 + 4.7) / 3) and s["min"] == pytest.approx(1.0)
    assert s["max"] == pytest.approx(46.4) and s["all_positive"]
    assert strip_plot({"ap50_deteriorated": s}, tmp_path / "m.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="seed 0: the report has no 'ao_all'"):
        margin_summary(reports, ["ao_all"])
    with pytest.raises(ValueError, match="seed 0: the report has no 'static' model"):
        margin_summary(reports, ["ap50_deteriorated"], against="static")
    for seed, r in reports.items():
        r["static"] = {"ap50_deteriorated": 0.300 + 0.01 * seed}
    s = margin_summary(reports, ["ap50_deteriorated"], against="static")["ap50_deteriorated"]
    assert [round(r["margin"], 1) for r in s["per_seed"].values()] == [2.1, 46.7, 3.0]
    assert [r["baseline"] for r in s["per_seed"].values()] == pytest.approx([30.0, 31.0, 32.0])
