"""Configs that start from another (``base:``): the child states only what differs."""
import pytest

from stpn.engine.config import ConfigError, config_dict, load_config, packaged_config


def test_a_child_merges_into_its_base_key_by_key(tmp_path):
    (tmp_path / "parent.yaml").write_text("task: detection\nmodel: {num_prompts: 7, prompt_depth: deep}\n"
                                          "optim: {lr: 0.5, steps: [3, 4]}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\nmodel: {num_prompts: 3}\noptim: {steps: [9]}\n")
    cfg = load_config(tmp_path / "child.yaml", ["optim.lr=0.25"])
    assert (cfg.model.num_prompts, cfg.model.prompt_depth) == (3, "deep")  # merged, not replaced
    assert cfg.optim.steps == [9] and cfg.optim.lr == 0.25  # lists replace; overrides still win


def test_a_packaged_base_by_name_and_the_released_config_states_only_its_differences():
    released = load_config(packaged_config("vid_swin_t_released"))
    paper = load_config(packaged_config("vid_swin_t"))
    a, b = config_dict(released), config_dict(paper)
    differs = {(s, k) for s in a for k in (a[s] if isinstance(a[s], dict) else {}) if a[s][k] != b[s].get(k)}
    assert differs == {("model", "predictor_kwargs"), ("model", "legacy_merge"),
                       ("detection", "conventions"), ("run", "out")}
    assert released.model.predictor_kwargs == {"num_groups": 16} and released.detection.conventions == "mmdet"


@pytest.mark.parametrize("base, message", [("a.yaml", "base chain comes back"), ("[1]", "base must name a config"),
                                           ("missing.yaml", "config file not found")])
def test_a_bad_base_is_refused_naming_the_file(tmp_path, base, message):
    (tmp_path / "a.yaml").write_text(f"base: {base}\n")
    with pytest.raises((ConfigError, FileNotFoundError), match=message):
        load_config(tmp_path / "a.yaml")


def test_a_base_file_is_read_beside_its_config_never_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "child.yaml").write_text("base: parent.yaml\n")
    (tmp_path / "parent.yaml").write_text("task: detection\nmodel: {num_prompts: 9}\n")  # in the cwd only
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="configs/parent.yaml"):
        load_config(tmp_path / "configs" / "child.yaml")
