"""Robustness curves: plumbing and consistency (clean == the task's evaluation; key-only plumbing)."""
import json

import numpy as np
import pytest

from conftest import tiny_config, tiny_vis_config
from stpn.cli import main
from stpn.data.corrupt import corrupt_video
from stpn.data.splits import read_split
from stpn.data.synth import SynthConfig, synth_video
from stpn.detection.inference import predict_video
from stpn.detection.task import DetectionTask
from stpn.engine.trainer import train
from stpn.robustness import run_robustness


@pytest.fixture(scope="module")
def detection_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rob")
    runs = {}
    for name, prompting in (("stpn", "true"), ("baseline", "false")):
        cfg = tiny_config(tmp, f"model.prompting={prompting}", f"run.out={tmp / name}")
        runs[name] = train(cfg, DetectionTask(), max_iterations=2)
    return tmp, runs, cfg


def test_support_video_feeds_the_prompts_only(detection_runs):
    _, runs, cfg = detection_runs
    det, cfg = DetectionTask().load(runs["stpn"])
    det.roi_heads.score_thresh = 0.0
    video = read_split(cfg.data, cfg.data.val_split)[0]
    bad = corrupt_video(video, "noise", 5)
    run = lambda v, sv=None: list(predict_video(det, v, "local", 2, 1, 1, support_video=sv))  # noqa: E731
    same = run(video, video)  # clean supports given explicitly == the usual path
    for a, b in zip(same, run(video)):
        np.testing.assert_array_equal(a["scores"], b["scores"])
    key_only, everything = run(bad, video), run(bad)
    assert any(not np.array_equal(a["scores"], b["scores"]) for a, b in zip(key_only, everything))
    short, _, _ = synth_video(SynthConfig(videos=1, frames=len(video) - 1, width=video.width, height=video.height), 0)
    with pytest.raises(ValueError, match="support video .* has"):
        run(video, short)


def test_robustness_report_clean_equals_eval_and_resumes(detection_runs, capsys):
    tmp, runs, cfg = detection_runs
    out = tmp / "robustness"
    report = run_robustness({n: str(r) for n, r in runs.items()}, out, ["noise", "jpeg"], [1], videos=None)
    for name, run in runs.items():
        assert main(["eval", "--weights", str(run), "--out", str(tmp / f"eval_{name}")]) == 0
        ap50 = json.loads((tmp / f"eval_{name}" / "metrics.json").read_text())["ap50_all"]
        assert report["runs"][name]["clean"] == pytest.approx(ap50, abs=1e-9)  # severity 0 == the evaluation
        assert report["runs"][name]["metric"] == "AP50"
    assert set(report["runs"]["stpn"]["curves"]["noise"]) == {"key+support", "key"}
    assert set(report["runs"]["baseline"]["curves"]["noise"]) == {"key+support"}  # no supports, one setting
    assert all(0 <= v <= 1 for c in report["runs"]["stpn"]["curves"].values() for m in c.values() for v in m.values())
    assert (out / "robustness.png").stat().st_size > 0 and (out / "robustness_margin.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "robustness: AP50" in printed and "mPC" in printed
    # mPC: the mean over the plan's cells with every frame corrupted; rPC = mPC / clean
    for name, row in report["summary"].items():
        cells = [report["runs"][name]["curves"][c]["key+support"]["1"] for c in ("noise", "jpeg")]
        assert row["mpc"] == pytest.approx(sum(cells) / 2)
        clean = report["runs"][name]["clean"]
        assert row["rpc"] == (pytest.approx(row["mpc"] / clean) if clean else None)
    # resume: the same plan has nothing left to do and keeps the numbers; another plan is refused
    saved = (out / "robustness.json").read_text()
    again = run_robustness({n: str(r) for n, r in runs.items()}, out, ["noise", "jpeg"], [1])
    assert again == json.loads(saved)
    with pytest.raises(ValueError, match="another plan"):
        run_robustness({n: str(r) for n, r in runs.items()}, out, ["noise"], [1])
    with pytest.raises(ValueError, match="run 'stpn' was scored from"):  # never mix two models' numbers
        run_robustness({"stpn": str(runs["baseline"])}, out, ["noise", "jpeg"], [1])


def test_robustness_command(detection_runs, capsys):
    tmp, runs, _ = detection_runs
    assert main(["robustness", "--weights", str(runs["stpn"]), str(runs["baseline"]), "--out", str(tmp / "cli"),
                 "--corruptions", "occlusion", "--severities", "2", "--settings", "key", "--videos", "1"]) == 0
    report = json.loads((tmp / "cli" / "robustness.json").read_text())
    assert report["plan"]["videos"] == 1 and list(report["runs"]) == ["stpn", "baseline"]
    assert list(report["runs"]["stpn"]["curves"]["occlusion"]) == ["key"]
    assert report["runs"]["baseline"]["curves"]["occlusion"] == {}  # key only means nothing without supports
    assert main(["robustness", "--weights", str(runs["stpn"]), "--out", str(tmp / "x"), "--severities", "6"]) == 2
    assert "--severities: invalid choice: 6" in capsys.readouterr().err


def test_tracker_keeps_the_support_frames_crops(tmp_path):
    from test_tracking import moving_square, tiny_tracker

    from stpn.tracking.tracker import start, step
    model = tiny_tracker()
    frames, gt = moving_square(8)
    noisy = [np.clip(f.astype(int) + np.random.default_rng(i).integers(-90, 90, f.shape), 0, 255).astype(np.uint8)
             for i, f in enumerate(frames)]

    def boxes(key, support=None):
        state = start(model, key[0], gt[0], 2, 1, 1, "cpu", None if support is None else support[0])
        return np.stack([step(model, key[t], state, None if support is None else support[t])[0] for t in range(1, 8)])

    np.testing.assert_array_equal(boxes(noisy, noisy), boxes(noisy))  # the frame itself == the usual path
    assert not np.array_equal(boxes(noisy, frames), boxes(noisy))  # clean supports change the prompts
    state = start(model, frames[0], gt[0], 2, 1, 1)
    with pytest.raises(ValueError, match="support frame 1 has shape"):
        step(model, frames[1], state, frames[1][:10])


def test_segmentation_robustness_clean_equals_eval(tmp_path):
    from stpn.segmentation.task import SegmentationTask
    cfg = tiny_vis_config(tmp_path)
    run = train(cfg, SegmentationTask(), max_iterations=1)
    report = run_robustness({"stpn": str(run)}, tmp_path / "rob", ["defocus"], [1], settings=["key"])
    assert main(["eval", "--weights", str(run), "--out", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["runs"]["stpn"]["metric"] == "mask AP50"
    assert report["runs"]["stpn"]["clean"] == pytest.approx(metrics["ap50_all"], abs=1e-9)


def test_each_setting_gets_the_right_frames(detection_runs, monkeypatch, tmp_path):
    _, runs, _ = detection_runs
    calls = []

    def score(self, model, cfg, videos, support_videos=None):
        calls.append(([v.meta.get("corruption") for v in videos],
                      None if support_videos is None else [v.meta.get("corruption") for v in support_videos]))
        return 0.5
    monkeypatch.setattr(DetectionTask, "robustness_score", score)
    run_robustness({"stpn": str(runs["stpn"])}, tmp_path, ["noise"], [1, 3], videos=2,
                   settings=["key+support", "key", "support"])
    noise = lambda s: [{"kind": "noise", "severity": s, "seed": 0}] * n  # noqa: E731
    n = len(calls[0][0])
    assert n >= 1 and calls == [([None] * n, None),  # clean
                                (noise(1), None), (noise(3), None),  # key+support: everything corrupted
                                (noise(1), [None] * n), (noise(3), [None] * n),  # key: clean supports
                                ([None] * n, noise(1)), ([None] * n, noise(3))]  # support: clean key frames


def _hand_report(stpn_cells, base_cells, clean=(0.9, 0.8)):
    """A robustness report with 2 corruptions x severities (1, 5), every frame corrupted."""
    plan = {"corruptions": ["noise", "fog"], "severities": [1, 5], "settings": ["key+support"], "videos": 2,
            "seed": 0, "definitions": "x"}
    runs = {}
    for name, cells, c0 in (("stpn", stpn_cells, clean[0]), ("baseline", base_cells, clean[1])):
        runs[name] = {"weights": name, "metric": "AP50", "prompting": name == "stpn", "clean": c0,
                      "curves": {c: {"key+support": {"1": cells[i][0], "5": cells[i][1]}}
                                 for i, c in enumerate(plan["corruptions"])}}
    return {"plan": plan, "runs": runs}


def test_margins_over_seeds_hand_worked(tmp_path):
    from stpn.robustness import seed_margins
    reports = {0: _hand_report([[0.80, 0.40], [0.70, 0.30]], [[0.75, 0.50], [0.60, 0.30]]),
               1: _hand_report([[0.90, 0.60], [0.50, 0.20]], [[0.70, 0.50], [0.60, 0.25]])}
    m = seed_margins(reports, "stpn", "baseline")
    # seed 0 margins: noise +5, -10; fog +10, 0. seed 1: noise +20, +10; fog -10, -5
    assert m["cells"]["noise"]["1"] == pytest.approx({"mean": 12.5, "min": 5.0, "max": 20.0})
    assert m["cells"]["noise"]["5"] == pytest.approx({"mean": 0.0, "min": -10.0, "max": 10.0})
    assert m["cells"]["fog"]["5"] == pytest.approx({"mean": -2.5, "min": -5.0, "max": 0.0})
    assert m["worst_cell"] == {"corruption": "fog", "severity": 5, "mean": pytest.approx(-2.5)}
    # mPC: seed 0 0.55 vs 0.5375 -> +1.25; seed 1 0.55 vs 0.5125 -> +3.75
    assert m["mpc_margin"]["per_seed"] == pytest.approx({0: 1.25, 1: 3.75})
    assert (m["mpc_margin"]["mean"], m["mpc_margin"]["min"]) == pytest.approx((2.5, 1.25))
    reports[1]["runs"]["baseline"]["curves"]["fog"]["key+support"].pop("5")
    with pytest.raises(ValueError, match=r"seed 1: cells missing .*\('fog', 5\)"):
        seed_margins(reports, "stpn", "baseline")
    with pytest.raises(ValueError, match="seed 0: no run named 'static'"):
        seed_margins(reports, "stpn", "static")
    reports[1]["plan"] = {**reports[1]["plan"], "videos": 3}
    with pytest.raises(ValueError, match="different plans"):
        seed_margins(reports, "stpn", "baseline")
