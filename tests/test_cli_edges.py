"""Every command at its edges, table-driven: unwritable outputs, an output that is an input, a file
where a folder is expected and the reverse, 0 and negative numbers, a non-YAML config, truncated
checkpoint / ONNX / video files. Each case: exit 2, one line on stderr naming the path or flag,
no traceback, and every input file unchanged (hashes before and after)."""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_DETECTION, tiny_config
from stpn.cli import main
from stpn.data.synth import SynthConfig, synth_video
from stpn.data.video import write_video
from stpn.detection.task import DetectionTask
from stpn.engine.trainer import train
from stpn.export import export_onnx
from stpn.tracking.model import STPNTracker


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    """Inputs a user has: a trained run, a video, a dataset, a tracker export; and traps."""
    root = tmp_path_factory.mktemp("edges")
    run = train(tiny_config(root), DetectionTask(), max_iterations=1)
    video, _, _ = synth_video(SynthConfig(videos=1, frames=4, width=96, height=64, seed=3), 0)
    write_video(root / "video.mp4", (video.frames[t] for t in range(len(video))), fps=10)
    assert main(["data", "synth", "--format", "vid", "--out", str(root / "vid"), "--videos", "1", "--frames", "3",
                 "--size", "64x48"]) == 0
    tracker = STPNTracker("vit_tiny_patch16_224", prompting=False, template_size=32, search_size=64, head_channels=8,
                          backbone_kwargs=dict(embed_dim=32, depth=2, num_heads=2)).eval()
    export_onnx(tracker, root / "onnx")
    graph = root / "onnx" / "template.onnx"
    graph.write_bytes(graph.read_bytes()[:200])  # truncated
    (root / "file.txt").write_text("a file\n")
    (root / "folder").mkdir()
    (root / "folder" / "keep.txt").write_text("keep\n")
    (root / "folder" / "keep_success.png").write_bytes(b"an earlier success plot")
    (root / "string.yaml").write_text("just a sentence, not a mapping\n")
    (root / "broken.yaml").write_text("model: [unclosed\n")
    (root / "truncated.mp4").write_bytes((root / "video.mp4").read_bytes()[:300])
    (root / "trunc_run").mkdir()
    (root / "trunc_run" / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes()[:100])
    shutil.copy(run / "config.json", root / "trunc_run" / "config.json")
    return root, run


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


R, V, RUN, F, D = "{root}", "{root}/video.mp4", "{run}", "{root}/file.txt", "{root}/folder"
CASES = {  # id: (argv, what the one line must name)
    "detect out unwritable": (["detect", V, "--weights", RUN, "--out", F + "/a.mp4"], "--out " + F + "/a.mp4"),
    "detect out is the input": (["detect", V, "--weights", RUN, "--out", V], "is the input"),
    "detect out is a folder": (["detect", V, "--weights", RUN, "--out", D], "is a folder; expected a file"),
    "detect json exists": (["detect", V, "--weights", RUN, "--json", F], "pass --overwrite"),
    "detect json is the weights": (["detect", V, "--weights", RUN + "/model.safetensors", "--json",
                                    RUN + "/model.safetensors", "--overwrite"], "is the input"),
    "detect json is the out video": (["detect", V, "--weights", RUN, "--out", R + "/o.mp4", "--json", R + "/o.mp4"],
                                     "is also --out"),
    "detect num-support 0": (["detect", V, "--weights", RUN, "--num-support", "0"], "--num-support"),
    "detect stride negative": (["detect", V, "--weights", RUN, "--stride", "-1"], "--stride"),
    "detect refresh 0": (["detect", V, "--weights", RUN, "--refresh-every", "0"], "--refresh-every"),
    "detect truncated video": (["detect", R + "/truncated.mp4", "--weights", RUN], "truncated.mp4"),
    "detect truncated weights": (["detect", V, "--weights", R + "/trunc_run/model.safetensors"],
                                 "trunc_run/model.safetensors"),
    "detect score threshold": (["detect", V, "--weights", RUN, "--score-threshold", "2"], "--score-threshold"),
    "track txt unwritable": (["track", V, "--onnx", R + "/onnx", "--box", "10,10,20,20", "--txt", F + "/t.txt"],
                             "--txt " + F + "/t.txt"),
    "track truncated onnx": (["track", V, "--onnx", R + "/onnx", "--box", "10,10,20,20"], "template.onnx"),
    "track num-support 0": (["track", V, "--onnx", R + "/onnx", "--box", "1,1,5,5", "--num-support", "0"],
                            "--num-support"),
    "segment png-dir is a file": (["segment", V, "--weights", RUN, "--png-dir", F], "is a file; expected a folder"),
    "segment stride 0": (["segment", V, "--weights", RUN, "--stride", "0"], "--stride"),
    "train non-yaml config": (["train", R + "/string.yaml"], "string.yaml: expected a YAML mapping"),
    "train broken yaml": (["train", R + "/broken.yaml"], "broken.yaml: malformed YAML"),
    "train run.out unwritable": (["train", "demo_cpu", *TINY_DETECTION, "data.root=" + R + "/data",
                                  "run.out=" + F + "/run"], F),
    "eval non-yaml config": (["eval", R + "/string.yaml", "--weights", RUN], "string.yaml: expected a YAML mapping"),
    "eval out unwritable": (["eval", "--weights", RUN, "--out", F + "/eval"], "--out " + F + "/eval"),
    "eval out is a file": (["eval", "--weights", RUN, "--out", F], "is a file; expected a folder"),
    "eval truncated weights": (["eval", "--weights", R + "/trunc_run"], "trunc_run/model.safetensors"),
    "export size 0x0": (["export", "--weights", RUN, "--out", R + "/x", "--size", "0x0"], "--size"),
    "export size garbage": (["export", "--weights", RUN, "--out", R + "/x", "--size", "big"], "--size"),
    "export out unwritable": (["export", "--weights", RUN, "--out", F + "/x", "--size", "96x64"], F),
    "export out is a file": (["export", "--weights", RUN, "--out", F, "--size", "96x64"], "is a file"),
    "export out holds graphs": (["export", "--weights", RUN, "--out", R + "/onnx", "--size", "96x64"],
                                "pass --overwrite"),
    "export num-support 0": (["export", "--weights", RUN, "--out", R + "/x", "--num-support", "0"], "--num-support"),
    "robustness videos 0": (["robustness", "--weights", RUN, "--out", R + "/rob", "--videos", "0"], "--videos"),
    "robustness videos -1": (["robustness", "--weights", RUN, "--out", R + "/rob", "--videos", "-1"], "--videos"),
    "robustness out is a file": (["robustness", "--weights", RUN, "--out", F], "is a file; expected a folder"),
    "synth out exists": (["data", "synth", "--format", "vid", "--out", R + "/vid"], "pass --overwrite"),
    "synth out unwritable": (["data", "synth", "--format", "vid", "--out", F + "/d"], F),
    "synth videos 0": (["data", "synth", "--format", "vid", "--out", R + "/new", "--videos", "0"], "--videos"),
    "synth size 0x5": (["data", "synth", "--format", "vid", "--out", R + "/new", "--size", "0x5"], "--size"),
    "corrupt out is the root": (["data", "corrupt", "--format", "vid", "--root", R + "/vid", "--out", R + "/vid",
                                 "--kind", "noise", "--overwrite"], "is the input"),
    "corrupt out holds the root": (["data", "corrupt", "--format", "vid", "--root", R + "/vid", "--out", R,
                                    "--kind", "noise", "--overwrite"], "holds the input"),
    "evaluate json is a folder": (["evaluate", "vid", "--gt", R + "/vid", "--results", F, "--json", D],
                                  "is a folder; expected a file"),
    "evaluate json unwritable": (["evaluate", "vid", "--gt", R + "/vid", "--results", F, "--json", F + "/m.json"], F),
    "evaluate json is the results": (["evaluate", "vid", "--gt", R + "/vid", "--results", F, "--json", F,
                                      "--overwrite"], "is the input"),
    "evaluate got10k plot beside json exists": (["evaluate", "got10k", "--root", R + "/vid", "--results", D,
                                                 "--json", R + "/folder/keep.json"], "keep_success.png: exists"),
    "demo out is a file": (["demo", "--out", F], "is a file; expected a folder"),
    "demo seed negative": (["demo", "--seed", "-1"], "--seed"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_command_refuses_bad_input_in_one_line_and_leaves_inputs_unchanged(area, capsys, case):
    root, run = area
    fill = lambda s: s.replace("{root}", str(root)).replace("{run}", str(run))  # noqa: E731
    argv, named = CASES[case]
    before = _hashes(root)
    code = main([fill(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"stpn {argv[0]}") and fill(named) in lines[0], lines[0]
    assert _hashes(root) == before


def test_the_overwrite_flag_replaces_an_output_and_debug_shows_the_traceback(area, tmp_path, capsys):
    root, run = area
    out = tmp_path / "vid"
    assert main(["data", "synth", "--format", "vid", "--out", str(out), "--videos", "1", "--frames", "2",
                 "--size", "32x32"]) == 0
    assert main(["data", "synth", "--format", "vid", "--out", str(out), "--videos", "1", "--frames", "2",
                 "--size", "32x32"]) == 2
    assert main(["data", "synth", "--format", "vid", "--out", str(out), "--videos", "1", "--frames", "2",
                 "--size", "32x32", "--overwrite"]) == 0
    with pytest.raises(ValueError, match="is a folder; expected a file"):
        main(["--debug", "detect", str(root / "video.mp4"), "--weights", str(run), "--out", str(root / "folder")])


def test_help_and_version_do_not_load_torch():
    code = ("import sys; from stpn.cli import main; rc = main(['--help']); rc2 = main(['track', '--help']); "
            "rc3 = main(['--version']); print('torch' in sys.modules, rc, rc2, rc3)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False 0 0 0"
    assert "stpn 0." in out


def test_every_option_has_help():
    import argparse

    from stpn.cli import build_parser
    missing = []

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
            elif action.option_strings and not action.help:
                missing.append(f"{name} {action.option_strings[0]}")
    walk(build_parser(), "stpn")
    assert missing == []


def test_result_files_follow_the_umask(tmp_path):
    from stpn.data.types import atomic_write, write_json
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", "x")
        write_json(tmp_path / "b.json", {"a": 1})
    finally:
        os.umask(old)
    assert oct((tmp_path / "a.txt").stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "b.json").stat().st_mode & 0o777) == oct(0o644)


def _ctrl_c_at(monkeypatch, stop: int) -> None:
    """open_source whose frame iterator raises KeyboardInterrupt when frame ``stop`` is read."""
    import stpn.data.video as video_module
    real = video_module.open_source

    def interrupted(source):
        video, frames, count, fps = real(source)

        def frames_then_ctrl_c():
            for t, frame in enumerate(frames):
                if t == stop:
                    raise KeyboardInterrupt
                yield frame
        return video, frames_then_ctrl_c(), count, fps
    monkeypatch.setattr(video_module, "open_source", interrupted)


def test_ctrl_c_before_the_first_frame_still_exits_130_with_an_empty_partial_record(area, tmp_path, monkeypatch,
                                                                                    capsys):
    import json
    root, run = area
    _ctrl_c_at(monkeypatch, 0)
    result = tmp_path / "r.json"
    assert main(["detect", str(root / "video.mp4"), "--weights", str(run), "--json", str(result),
                 "--out", str(tmp_path / "a.mp4")]) == 130  # not "no frame to write"
    record = json.loads(result.read_text())
    assert record["complete"] is False and record["frames_done"] == 0 and record["frames"] == []
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.parametrize("command", ["detect", "track"])  # segment writes through the same write_annotated
def test_ctrl_c_exits_130_and_the_outputs_say_they_are_partial(area, tmp_path, monkeypatch, capsys, command):
    import json
    root, run = area
    _ctrl_c_at(monkeypatch, 2)  # Ctrl-C while the third frame is read
    result = tmp_path / ("r.txt" if command == "track" else "r.json")
    argv = {"detect": ["detect", "--json", str(result)],
            "track": ["track", "--onnx", str(tmp_path / "onnx"), "--box", "20,20,16,16", "--txt", str(result)]}[command]
    if command == "track":  # a readable tracker export of its own (the shared one is truncated on purpose)
        tracker = STPNTracker("vit_tiny_patch16_224", prompting=False, template_size=32, search_size=64,
                              head_channels=8, backbone_kwargs=dict(embed_dim=32, depth=2, num_heads=2)).eval()
        export_onnx(tracker, tmp_path / "onnx")
    else:
        argv += ["--weights", str(run)]
    assert main([argv[0], str(root / "video.mp4"), *argv[1:], "--out", str(tmp_path / "a.mp4")]) == 130
    out = capsys.readouterr()
    assert "partial: 2 of 4 frames" in out.out and "interrupted" in out.err
    if command == "detect":
        record = json.loads(result.read_text())
        assert record["complete"] is False and record["frames_done"] == 2 and record["frames_total"] == 4
        assert len(record["frames"]) == 2
    else:
        assert len(result.read_text().splitlines()) == 2
        note = json.loads((tmp_path / "r.txt.partial.json").read_text())
        assert note == {"complete": False, "frames_done": 2, "frames_total": 4}


def test_progress_prints_plain_lines_off_a_terminal_and_nothing_when_disabled():
    import io

    from rich.console import Console

    from stpn.progress import Progress
    for disable, expected in ((False, 10), (True, 0)):  # a line at every 10 % (3 x 0.1 included); none disabled
        text = io.StringIO()
        with Progress(console=Console(file=text, force_terminal=False), disable=disable) as progress:
            task = progress.add_task("work", total=10)
            for _ in range(10):
                progress.advance(task)
        lines = [line for line in text.getvalue().splitlines() if line.startswith("work: ")]
        assert len(lines) == expected, text.getvalue()
        if expected:
            assert lines[0].startswith("work: 1/10 (10 %)") and lines[-1].startswith("work: 10/10 (100 %)")
