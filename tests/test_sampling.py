import random

import pytest

from stpn.core.sampling import (
    SupportConfig,
    causal_support,
    global_support,
    local_support,
    support_indices,
    train_bilateral_support,
)


def test_global_spreads_k_frames_over_the_whole_video():
    assert global_support(27, 14) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26]
    assert global_support(100, 3) == [0, 50, 99]  # round(49.5) -> 50 (half to even)
    assert global_support(5, 1) == [2]


def test_global_repeats_frames_of_videos_shorter_than_k():
    assert global_support(3, 5) == [0, 0, 1, 2, 2]  # round(0.5)=0, round(1.5)=2
    assert global_support(1, 4) == [0, 0, 0, 0]


def test_local_is_symmetric_and_clipped_at_the_borders():
    assert local_support(10, 30, 4, 2) == [6, 8, 12, 14]
    assert local_support(1, 30, 4, 2) == [0, 0, 3, 5]
    assert local_support(28, 30, 4, 3) == [22, 25, 29, 29]
    assert local_support(0, 1, 2, 1) == [0, 0]


def test_causal_uses_past_grid_frames_only():
    assert causal_support(9, 100, 3, 1) == [6, 7, 8]
    assert causal_support(9, 100, 3, 2) == [4, 6, 8]
    assert causal_support(8, 100, 3, 2) == [2, 4, 6]  # 8 itself is not in the past
    assert causal_support(3, 100, 4, 2) == [0, 0, 0, 2]  # padded with the oldest frame
    assert causal_support(0, 100, 4, 2) == [0, 0, 0, 0]  # nothing in the past: the frame itself


def test_train_bilateral_draws_one_frame_each_side_within_nine():
    rng = random.Random(0)
    for _ in range(200):
        before, after = train_bilateral_support(50, 100, 2, 9, rng)
        assert 41 <= before <= 49 and 51 <= after <= 59


def test_train_bilateral_is_seeded_and_handles_short_videos():
    assert (train_bilateral_support(5, 20, 2, 9, random.Random(3))
            == train_bilateral_support(5, 20, 2, 9, random.Random(3)))
    assert train_bilateral_support(0, 1, 2, 9, random.Random(0)) == [0, 0]  # still image: copies
    assert train_bilateral_support(0, 2, 2, 9, random.Random(0)) == [1, 1]  # one side empty: pad
    assert train_bilateral_support(1, 2, 4, 9, random.Random(0)) == [0, 0, 0, 0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(policy="local", num_support=3), "even num_support"),
    (dict(policy="train_bilateral", num_support=1), "even num_support"),
    (dict(policy="causal", stride=0), "stride"),
    (dict(policy="global", num_support=0), "num_support"),
    (dict(policy="future"), "one of"),
])
def test_invalid_configurations_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SupportConfig(**kwargs)


def test_sampling_never_mutates_its_configuration():
    config = SupportConfig("global", 14)
    assert support_indices(0, 5, config) == [0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4]  # i*4/13 rounded
    assert config == SupportConfig("global", 14)
    with pytest.raises(AttributeError):
        config.num_support = 3


def test_frame_outside_the_video_raises():
    with pytest.raises(ValueError, match="t=7 outside the video of 5 frames"):
        support_indices(7, 5, SupportConfig("local", 2))
