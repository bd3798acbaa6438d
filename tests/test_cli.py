import json

import pytest

from stpn.cli import main


def test_demo_writes_a_report_whose_stream_matches_offline(tmp_path, capsys):
    assert main(["demo", "--task", "features", "--tiny", "--frames", "8", "--size", "128", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["blurred_frames"] == [3, 7]
    assert report["stream_vs_offline_max_abs_diff"] < 1e-4
    assert set(report["ms_per_frame"]) == {"baseline", "global", "causal"}
    assert report["stage_shapes"] == [[1, 32, 32, 32], [1, 64, 16, 16], [1, 128, 8, 8], [1, 256, 4, 4]]
    # global K=14 over 8 frames reads each frame once (14 indices, 8 distinct frames)
    assert report["unprompted_passes"] == {"global": 8, "causal": 2} and report["predictor_calls"]["causal"] == 2
    assert "global K=14" in capsys.readouterr().out


def test_demo_rejects_a_size_not_divisible_by_32(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--task", "features", "--size", "100"])
    assert "--size must be a multiple of 32" in capsys.readouterr().err
