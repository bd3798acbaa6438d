"""Bad input at the edges a user touches (Python API, checkpoints, command line): each case
asserts the error type and that the message names the argument, file or key. Readers and
evaluators have theirs beside their formats (test_data.py, test_eval_*.py), run folders in
test_runs.py."""
import pytest
import torch

from conftest import tiny_config, tiny_stpn
from stpn.cli import main
from stpn.detection.task import DetectionTask
from stpn.engine.trainer import train


# --- Python API ---------------------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda m: m(torch.randn(1, 3, 64, 64), torch.randn(1, 0, 3, 64, 64)),
     r"support_frames must hold K >= 1 frames per clip, got shape \(1, 0, 3, 64, 64\)"),
    (lambda m: m.new_stream("causal", num_support=0), r"num_support \(K\) must be an integer >= 1, got 0"),
    (lambda m: m.new_stream("causal", num_support=2, stride=0), r"stride \(S\) must be an integer >= 1, got 0"),
    (lambda m: m(torch.randn(1, 64, 64)), r"frames must have shape \(B, 3, H, W\), got \(1, 64, 64\)"),
])
def test_python_api_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_stpn().eval())


# --- checkpoints and the command line -----------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return train(tiny_config(tmp_path_factory.mktemp("run")), DetectionTask(), max_iterations=1)


@pytest.mark.parametrize("content", [b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": trunc"])
def test_an_empty_or_truncated_weights_file_is_named(trained_run, tmp_path, capsys, content):
    (tmp_path / "model.safetensors").write_bytes(content)
    (tmp_path / "config.json").write_text((trained_run / "config.json").read_text())
    assert main(["eval", "--weights", str(tmp_path / "model.safetensors")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'model.safetensors'}: not a safetensors weights file" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["eval", "--weights", "{run}", "data.test_num_suport=2"], "unknown config key data.test_num_suport (did you mean data.test_num_support?)"),
    (["eval", "--weights", "{run}", "--mode", "local", "data.test_num_support=0"], "num_support (K) must be an integer >= 1, got 0"),
    (["eval", "--weights", "{missing}"], "weights file not found: {missing}"),
    (["detect", "{missing}.mp4", "--weights", "{run}"], "{missing}.mp4"),
    (["train", "{missing}.yaml"], "config file not found: {missing}.yaml"),
])
def test_command_line_errors_are_one_line_naming_the_key_or_file(trained_run, tmp_path, capsys, argv, message):
    fill = lambda s: s.format(run=trained_run, missing=tmp_path / "nothing")  # noqa: E731
    assert main([fill(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert fill(message) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
