"""Training-time corruption of clips (``data.train_corrupt``): off changes nothing, on corrupts
exactly the frames its mode names, deterministically, and bad settings are refused by name."""
import random

import numpy as np
import pytest
import torch

from stpn.core.sampling import SupportConfig
from stpn.data.clips import ClipDataset
from stpn.data.corrupt import TrainCorruption, corrupt
from stpn.data.types import ArrayFrames, FrameTargets, Video


def _videos(n=2, frames=8, h=24, w=32):
    rng = np.random.default_rng(0)
    return [Video(f"v{i}", ArrayFrames([rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(frames)]),
                  w, h, [FrameTargets(np.zeros((0, 4)), [], []) for _ in range(frames)]) for i in range(n)]


SUPPORT = SupportConfig("train_bilateral", 2, 1, 2)


def _raw(video, j):
    return torch.from_numpy(np.array(video.frames[j])).permute(2, 0, 1)


def test_off_and_p0_give_the_clean_clips():
    videos = _videos()
    clean = ClipDataset(videos, SUPPORT, seed=3)
    never = ClipDataset(videos, SUPPORT, seed=3, corruption=TrainCorruption(p=0.0))
    for i in range(len(clean)):
        a, b = clean[i], never[i]
        assert torch.equal(a.frame, b.frame) and torch.equal(a.support, b.support)
        assert torch.equal(a.frame, _raw(videos[a.video == "v1"], a.index))


@pytest.mark.parametrize("mode", ["all", "key", "support"])
def test_each_mode_corrupts_exactly_its_frames_with_one_kind_and_severity(mode):
    videos = _videos()
    tc = TrainCorruption(p=1.0, kinds=("noise",), severities=(5,), modes=((mode, 1.0),))
    data = ClipDataset(videos, SUPPORT, seed=0, corruption=tc)
    for i in range(len(data)):
        s = data[i]
        video = videos[int(s.video[1])]
        # the draw as clip() makes it: support indices first, then the corruption's plan
        rng = random.Random(hash((0, 0, i)))
        from stpn.core.sampling import support_indices
        assert support_indices(s.index, len(video), SUPPORT, rng) == s.support_index
        kind, severity, drawn_mode, seed = tc.draw(rng)
        assert (kind, severity, drawn_mode) == ("noise", 5, mode)
        expect = lambda j, hit: torch.from_numpy(corrupt(video.frames[j], kind, severity, (seed, j)) if hit  # noqa: E731
                                                 else np.array(video.frames[j])).permute(2, 0, 1)
        assert torch.equal(s.frame, expect(s.index, mode in ("all", "key")))
        for j, sup in zip(s.support_index, s.support):
            assert torch.equal(sup, expect(j, mode in ("all", "support")))
        assert torch.equal(s.frame, _raw(video, s.index)) == (mode == "support")  # noise 5 changes a frame


def test_same_item_same_pixels_and_about_p_of_the_clips_corrupted():
    videos = _videos(n=4, frames=25)
    tc = TrainCorruption(p=0.5, kinds=("noise", "jpeg_compression"), modes=(("all", 1.0),))
    a = ClipDataset(videos, SUPPORT, seed=1, corruption=tc)
    b = ClipDataset(videos, SUPPORT, seed=1, corruption=tc)
    hit = 0
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert torch.equal(x.frame, y.frame) and torch.equal(x.support, y.support)
        hit += not torch.equal(x.frame, _raw(videos[int(x.video[1])], x.index))
    assert 0.3 < hit / len(a) < 0.7, hit / len(a)
    a.set_epoch(1)  # another epoch draws again
    assert any(not torch.equal(a[i].frame, b[i].frame) for i in range(len(a)))


def test_config_form_and_bad_settings_named():
    tc = TrainCorruption.from_dict({"p": 0.25, "kinds": "pixelate", "severities": [2, 3], "modes": {"key": 1}})
    assert tc == TrainCorruption(0.25, ("pixelate",), (2, 3), (("key", 1),))
    assert TrainCorruption.from_dict(None) is None
    for bad, match in [({"p": 2}, "p must be in"), ({"kinds": ["rain"]}, "unknown image corruption 'rain'"),
                       ({"kinds": ["h264"]}, "unknown image corruption 'h264'"), ({"severities": [0]}, "1..5"),
                       ({"modes": {"future": 1}}, "unknown mode 'future'"), ({"modes": {"all": 0}}, "sum to 0"),
                       ({"prob": 0.5}, r"unknown keys \['prob'\]"), ({"modes": ["all"]}, "map a mode")]:
        with pytest.raises(ValueError, match=match):
            TrainCorruption.from_dict(bad)


def test_tasks_without_clips_refuse_the_setting_by_name(tmp_path):
    from stpn.engine.config import load_config, packaged_config
    from stpn.engine.registry import get_task
    for name in ("sot_demo_cpu", "demo_cpu_pretrain"):
        cfg = load_config(packaged_config(name), [f"data.root={tmp_path / name}", "data.train_corrupt={p: 0.5}"])
        with pytest.raises(ValueError, match="data.train_corrupt is not supported by the"):
            get_task(cfg.task).train_dataset(cfg)
