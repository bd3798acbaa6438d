"""The paired demo's runner: two trainings side by side, a model evaluated on the core its
finished training freed while the other still trains (fake processes: no training here)."""
import json
import subprocess
import time
from types import SimpleNamespace

import pytest
from rich.console import Console

from stpn.demos import paired as demo


class FakeProcess:
    """A training process that exits after ``polls`` polls with ``code``."""
    plan: dict = {}
    made: dict = {}

    def __init__(self, args, stdout=None, stderr=None, env=None):
        out = next(a for a in args if a.startswith("run.out="))[len("run.out="):]
        self.name = out.rsplit("/", 1)[-1]
        self.left, self.code = self.plan[self.name]
        self.returncode, self.terminated = None, False
        self.env = env
        FakeProcess.made[self.name] = self

    def poll(self):
        self.left -= 1
        if self.left <= 0 and self.returncode is None and not callable(self.code):
            self.returncode = self.code
        elif callable(self.code) and self.code() is not None:  # exits once a condition holds
            self.returncode = self.code()
        return self.returncode

    def terminate(self):
        self.terminated = True


def _configs(tmp_path, names=("stpn", "baseline")):
    return {name: SimpleNamespace(run=SimpleNamespace(out=str(tmp_path / name)),
                                  model=SimpleNamespace(prompting=name != "baseline",
                                                        predictor="static" if name == "static" else "attention",
                                                        predictor_kwargs={} if name == "static" else {"num_groups": 4}))
            for name in names}


@pytest.fixture
def fake_training(monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    FakeProcess.made = {}
    return FakeProcess


def test_the_model_trained_first_is_evaluated_while_the_other_trains(tmp_path, fake_training):
    seen = []
    # STPN's training ends only once an evaluation has started: that evaluation ran while it trained
    fake_training.plan = {"baseline": (2, 0), "stpn": (0, lambda: 0 if seen else None)}

    def evaluate(name):
        seen.append((name, fake_training.made["stpn"].returncode))
        return {"ap50": 0.5}

    seconds, results = demo.train_side_by_side(_configs(tmp_path), tmp_path / "c.yaml", 10, Console(quiet=True),
                                               while_training=evaluate)
    assert results == {"baseline": {"ap50": 0.5}}  # only the one that finished first
    assert seen == [("baseline", None)]  # STPN still training then
    assert set(seconds) == {"stpn", "baseline"}
    for name in ("stpn", "baseline"):  # recorded as each finished: a resumed demo skips both
        assert json.loads((tmp_path / name / "timing.json").read_text())["train_seconds"] == seconds[name]
        assert demo.finished_run(tmp_path / name) is False  # no weights written by the fakes
        assert fake_training.made[name].env["OMP_NUM_THREADS"] == "1"


def test_models_finishing_together_are_left_to_the_caller(tmp_path, fake_training):
    fake_training.plan = {"baseline": (3, 0), "stpn": (3, 0)}
    seconds, results = demo.train_side_by_side(_configs(tmp_path), tmp_path / "c.yaml", 10, Console(quiet=True),
                                               while_training=lambda name: pytest.fail(f"{name} evaluated early"))
    assert results == {} and set(seconds) == {"stpn", "baseline"}


def test_a_failed_training_stops_the_other_and_names_its_log(tmp_path, fake_training):
    fake_training.plan = {"baseline": (2, 1), "stpn": (50, 0)}
    with pytest.raises(RuntimeError, match=r"training baseline failed \(exit 1\); see .*baseline/train.log"):
        demo.train_side_by_side(_configs(tmp_path), tmp_path / "c.yaml", 10, Console(quiet=True),
                                while_training=lambda name: pytest.fail("a failed model is not evaluated"))
    assert fake_training.made["stpn"].terminated
    assert not (tmp_path / "baseline" / "timing.json").exists()


def test_a_third_model_waits_for_a_free_core_and_trains_with_its_own_predictor(tmp_path, fake_training):
    started = []
    real = FakeProcess.__init__

    def init(self, args, **kw):
        real(self, args, **kw)
        started.append((self.name, sorted(n for n, p in FakeProcess.made.items() if p.returncode is None
                                          and n != self.name), args))
    fake_training.__init__ = init
    try:
        fake_training.plan = {"stpn": (6, 0), "baseline": (2, 0), "static": (2, 0)}
        seconds, _ = demo.train_side_by_side(_configs(tmp_path, ("stpn", "baseline", "static")), tmp_path / "c.yaml",
                                             10, Console(quiet=True))
    finally:
        fake_training.__init__ = real
    assert [s[0] for s in started] == ["stpn", "baseline", "static"]
    assert started[2][1] == ["stpn"]  # static started once the baseline had finished: two at a time
    assert set(seconds) == {"stpn", "baseline", "static"}
    args = {name: a for name, _, a in started}
    assert "model.predictor=static" in args["static"] and "model.predictor_kwargs={}" in args["static"]
    assert 'model.predictor_kwargs={"num_groups": 4}' in args["stpn"]


def test_static_control_config_is_the_stpn_run_with_static_prompts(tmp_path):
    from stpn.detection.demo import demo_config
    from stpn.engine.config import config_dict
    stpn, static = demo_config(tmp_path, False, True), demo.static_config(demo_config(tmp_path, False, True))
    assert static.model.predictor == "static" and static.model.predictor_kwargs == {}
    assert static.run.out == str(tmp_path / "static") and static.model.prompting
    a, b = config_dict(stpn), config_dict(static)
    for d in (a, b):
        d["model"].pop("predictor"), d["model"].pop("predictor_kwargs"), d["run"].pop("out")
    assert a == b  # nothing else differs: same data, budget, seed, start
    with pytest.raises(ValueError, match="model.prompting false"):
        demo.static_config(demo_config(tmp_path, False, False))
