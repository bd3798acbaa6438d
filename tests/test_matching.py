"""The suite's detection comparison: sets, not positions (a score tie may sort either way)."""
import numpy as np
import pytest

from conftest import assert_same_detections

A = dict(boxes=np.array([[0, 0, 10, 10], [20, 20, 30, 30.]]), scores=np.array([0.5, 0.50000004]), labels=np.array([1, 1]))


def _swapped(d):
    return {k: v[::-1].copy() for k, v in d.items()}


def test_detections_in_another_order_are_the_same_set():
    assert_same_detections(A, _swapped(A))


@pytest.mark.parametrize("change", ["box", "label", "score", "missing"])
def test_a_changed_detection_is_named(change):
    b = {k: v.copy() for k, v in A.items()}
    if change == "box":
        b["boxes"][1, 3] += 0.01
    elif change == "label":
        b["labels"][1] = 2
    elif change == "score":
        b["scores"][0] += 1e-3
    else:
        b = {k: v[:1] for k, v in b.items()}
    with pytest.raises(AssertionError, match="unmatched|detections vs"):
        assert_same_detections(b, A)


def test_an_nms_tie_may_keep_the_other_box_of_the_pair():
    other = {k: v.copy() for k, v in A.items()}
    other["boxes"][1] = [21, 20, 31, 30]  # overlaps the kept box by 0.82, its score equal within 1e-7
    assert_same_detections(other, A)
    other["scores"][1] += 1e-3  # no longer a tie
    with pytest.raises(AssertionError, match="unmatched"):
        assert_same_detections(other, A)


def test_the_top_k_cut_may_fall_either_side_of_a_tie():
    other = {k: v.copy() for k, v in A.items()}
    other["boxes"][0] = [50, 50, 60, 60]  # another detection at the lowest score
    other["scores"][0] = 0.5 + 5e-8
    with pytest.raises(AssertionError, match="unmatched"):
        assert_same_detections(other, A)
    assert_same_detections(other, A, top_k=2)

