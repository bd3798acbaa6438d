import json
import subprocess
import sys
from pathlib import Path

import pytest

from stpn.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_writes_a_report_whose_stream_matches_offline(tmp_path, capsys):
    assert main(["demo", "--task", "features", "--tiny", "--frames", "8", "--size", "128", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["blurred_frames"] == [3, 7]
    assert report["stream_vs_offline_max_abs_diff"] < 1e-4
    assert set(report["ms_per_frame"]) == {"baseline", "global", "causal"}
    assert report["stage_shapes"] == [[1, 32, 32, 32], [1, 64, 16, 16], [1, 128, 8, 8], [1, 256, 4, 4]]
    assert report["unprompted_passes"] == {"global": 14, "causal": 2} and report["predictor_calls"]["causal"] == 2
    assert "global K=14" in capsys.readouterr().out


def test_demo_rejects_a_size_not_divisible_by_32(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--task", "features", "--size", "100"])
    assert "--size must be a multiple of 32" in capsys.readouterr().err


def test_overhead_benchmark_runs_and_prints_ratios(tmp_path):
    out = tmp_path / "rows.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--tiny", "--repeats", "1",
                    "--json", str(out)], check=True, capture_output=True, timeout=300)
    rows = json.loads(out.read_text())
    variants = {r["variant"] for r in rows}
    assert {"prompted, N_P=5", "attention", "decoder", "K=4 S=8 refresh every 8"} <= variants
    assert all(r["ratio"] > 0 for r in rows)
