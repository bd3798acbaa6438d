import json

import numpy as np
import pytest

from stpn.cli import main
from stpn.data import AnnotationError, ArrayFrames, FrameTargets, Video, read_got10k, write_got10k, write_got10k_results
from stpn.evaluation.got10k import evaluate_got10k, rect_iou


def sequence(name, boxes_xywh, cover=None, size=(100, 80)):
    n = len(boxes_xywh)
    targets = [FrameTargets([[x, y, x + w, y + h]], [1], [1]) for x, y, w, h in boxes_xywh]
    cover = np.full(n, 8) if cover is None else np.asarray(cover)
    return Video(name, ArrayFrames([np.zeros((size[1], size[0], 3), np.uint8)] * n), size[0], size[1], targets,
                 meta={"resolution": size, "cover": cover})


def test_rect_iou_hand_computed_and_clipped_to_the_image():
    assert rect_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 10, 10]]))[0] == pytest.approx(50 / 150)
    # with bound (20, 20) the box sticking out right is cut to 10x10
    assert rect_iou(np.array([[10, 0, 30, 10]]), np.array([[10, 0, 10, 10]]), bound=(20, 20))[0] == pytest.approx(1.0)


def test_ao_sr_skip_the_first_frame_and_uncovered_frames(tmp_path):
    gt = [[0, 0, 10, 10]] * 5
    pred = [[50, 50, 5, 5],      # frame 0: ignored (given)
            [0, 0, 10, 10],      # IoU 1
            [5, 0, 10, 10],      # IoU 1/3
            [0, 0, 10, 5],       # IoU 0.5: not counted by SR0.5 (strict)
            [60, 60, 5, 5]]      # cover 0: ignored
    video = sequence("a", gt, cover=[8, 8, 8, 8, 0])
    write_got10k_results(tmp_path, "a", np.array(pred, float), np.array([0.1, 0.1, 0.2, 0.0, 0.1]))
    result = evaluate_got10k([video], tmp_path)
    assert result["num_frames"] == 3
    assert result["ao"] == pytest.approx((1 + 1 / 3 + 0.5) / 3)
    assert result["sr50"] == pytest.approx(1 / 3) and result["sr75"] == pytest.approx(1 / 3)
    assert result["fps"] == pytest.approx(np.mean([10, 10, 5, 10]))  # zero times are left out
    assert result["per_sequence"]["a"]["frames_scored"] == 3


def test_ao_pools_frames_over_sequences_and_repetitions(tmp_path):
    a = sequence("a", [[0, 0, 10, 10]] * 3)
    b = sequence("b", [[0, 0, 10, 10]] * 2)
    write_got10k_results(tmp_path, "a", [np.array([[0, 0, 10, 10]] * 3, float), np.array([[5, 0, 10, 10]] * 3, float)],
                         np.full(3, 0.1))
    write_got10k_results(tmp_path, "b", np.array([[40, 40, 10, 10]] * 2, float), np.full(2, 0.05))
    result = evaluate_got10k([a, b], tmp_path)
    # a: frames 1, 2 in two repetitions (1, 1, 1/3, 1/3); b: frame 1 (0)
    assert result["ao"] == pytest.approx((2 + 2 / 3 + 0) / 5)
    assert result["per_sequence"]["a"]["repetitions"] == 2
    assert result["fps"] == pytest.approx((10 + 20) / 2)


def test_frame_subset(tmp_path):
    video = sequence("a", [[0, 0, 10, 10]] * 4)
    write_got10k_results(tmp_path, "a", np.array([[0, 0, 10, 10], [0, 0, 10, 10], [30, 30, 5, 5], [0, 0, 10, 10]], float),
                         np.full(4, 0.1))
    assert evaluate_got10k([video], tmp_path, frames={"a": [2]})["ao"] == 0.0
    assert evaluate_got10k([video], tmp_path, frames={"a": [0, 1, 3]})["ao"] == 1.0  # frame 0 never scored


def test_results_with_spaces_or_wrong_length_or_unknown_sequence_raise(tmp_path):
    video = sequence("a", [[0, 0, 10, 10]] * 3)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "a_001.txt").write_text("0,0,10,10\n0 0 10 10\n0,0,10,10\n")
    with pytest.raises(AnnotationError, match=r"a_001.txt:2: expected 4 comma-separated values x,y,w,h "
                                              r"\(values must be separated by commas\)"):
        evaluate_got10k([video], tmp_path)
    (tmp_path / "a" / "a_001.txt").write_text("0,0,10,10\n0,0,10,10\n")
    with pytest.raises(AnnotationError, match="expected 3 lines of result boxes"):
        evaluate_got10k([video], tmp_path)
    (tmp_path / "zzz").mkdir()
    with pytest.raises(ValueError, match=r"sequences not in the ground truth: \['zzz'\]"):
        evaluate_got10k([video], tmp_path)


def test_layout_round_trip_and_cli_with_plot(tmp_path):
    video = sequence("seq_1", [[10, 10, 20, 15], [12, 11, 20, 15], [14, 12, 20, 15]], cover=[8, 5, 3])
    video.targets[1].extra = {"cover": np.array([5]), "cut_by_image": np.array([0])}
    video.targets[2].extra = {"cover": np.array([3]), "cut_by_image": np.array([1])}
    video.targets[2].visible[:] = True
    write_got10k(tmp_path / "data", "val", [video], progress=False)
    back = read_got10k(tmp_path / "data", "val", progress=False)[0]
    assert back.name == "seq_1" and (back.width, back.height) == (100, 80)
    assert np.allclose(np.stack([t.boxes[0] for t in back.targets]), np.stack([t.boxes[0] for t in video.targets]))
    assert back.meta["cover"].tolist() == [8, 5, 3]
    assert back.frames[0].shape == (80, 100, 3)
    write_got10k_results(tmp_path / "res", "seq_1", np.array([[10, 10, 20, 15]] * 3, float), np.full(3, 0.02))
    out = tmp_path / "m.json"
    assert main(["evaluate", "got10k", "--root", str(tmp_path / "data"), "--results", str(tmp_path / "res"),
                 "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics) >= {"ao", "sr50", "sr75", "fps", "per_sequence"}
    assert 0 <= metrics["ao"] <= 1 and (tmp_path / "m_success.png").stat().st_size > 1000


def test_present_target_with_zero_area_box_raises(tmp_path):
    video = sequence("s", [[10, 10, 20, 15], [10, 10, 20, 15]])
    write_got10k(tmp_path, "val", [video], progress=False)
    (tmp_path / "val" / "s" / "groundtruth.txt").write_text("10,10,20,15\n10,10,0,15\n")
    with pytest.raises(AnnotationError, match=r"groundtruth.txt:2: the target is present but its box .* has zero area"):
        read_got10k(tmp_path, "val", progress=False)


def test_the_written_target_is_the_first_object_visible_in_the_first_frame(tmp_path):
    frames = ArrayFrames([np.zeros((80, 100, 3), np.uint8)] * 2)
    targets = [FrameTargets([[0, 0, 10, 10], [30, 30, 50, 40]], [1, 2], [1, 2], visible=[False, True]),
               FrameTargets([[2, 2, 12, 12], [32, 31, 52, 41]], [1, 2], [1, 2], visible=[True, True])]
    write_got10k(tmp_path, "val", [Video("two", frames, 100, 80, targets)], progress=False)
    assert (tmp_path / "val" / "two" / "groundtruth.txt").read_text().splitlines()[0] == "30.0000,30.0000,20.0000,10.0000"
    hidden = [FrameTargets([[0, 0, 10, 10]], [1], [1], visible=[False])] * 2
    with pytest.raises(AnnotationError, match="video none: no object is visible in its first frame"):
        write_got10k(tmp_path, "val", [Video("none", frames, 100, 80, hidden)], progress=False)


@pytest.mark.parametrize("lines, message", [
    ("0,0,10,10\n1,nan,10,10\n0,0,10,10\n", r"a_001.txt:2: a value that is not a finite number \(NaN or inf\)"),
    ("0,0,10,10\n0,0,10,10\n0,0,inf,10\n", r"a_001.txt:3: a value that is not a finite number"),
    ("0,0,10,10\n0,0,-10,10\n0,0,10,10\n", r"a_001.txt:2: negative width or height"),
])
def test_results_with_non_finite_or_negative_boxes_are_refused(tmp_path, lines, message):
    # a NaN box used to give AO = nan and a JSON file with a bare NaN
    video = sequence("a", [[0, 0, 10, 10]] * 3)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "a_001.txt").write_text(lines)
    with pytest.raises(AnnotationError, match=message):
        evaluate_got10k([video], tmp_path)


def test_non_finite_times_are_refused(tmp_path):
    video = sequence("a", [[0, 0, 10, 10]] * 3)
    write_got10k_results(tmp_path, "a", np.array([[0, 0, 10, 10]] * 3, float), np.full(3, 0.1))
    (tmp_path / "a" / "a_time.txt").write_text("0.1\nnan\n0.1\n")
    with pytest.raises(AnnotationError, match=r"a_time.txt:2: a time that is not a finite number"):
        evaluate_got10k([video], tmp_path)
