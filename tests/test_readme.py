"""The README and the getting-started page say only what works: their Python block runs as
written, every `stpn` command line in them parses (the cheap ones run), every link resolves."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from stpn.cli import build_parser, main, parse

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "index.md"]


def _blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.S)


def _commands(page: Path) -> list[str]:
    """Every `stpn ...` line of the page's bash blocks (``torchrun ... -m stpn ...`` as its stpn part)."""
    lines = []
    for block in _blocks(page, "bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("stpn ") or (line.startswith("torchrun ") and " -m stpn " in line):
                lines.append(line[line.index("stpn "):])
    return lines


def test_the_readme_has_the_two_commands_first_and_stays_short():
    text = (ROOT / "README.md").read_text()
    first = _blocks(ROOT / "README.md", "bash")[0]
    assert first.lstrip().startswith("make demo") and "make test" in first
    assert len(text.splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_stpn_command_line_parses(page):
    commands = _commands(page)
    assert commands, page
    parser = build_parser()
    for command in commands:
        argv = shlex.split(command)[1:]
        try:
            parse(parser, argv)  # an unknown option or a bad value exits with 2 here, naming it
        except SystemExit as done:
            assert done.code == 0, command  # --version, --help


def test_the_cheap_commands_run(capsys):
    assert main(["--version"]) == 0
    assert "stpn 0." in capsys.readouterr().out
    for command in ("detect", "segment", "track", "train", "eval", "evaluate", "export", "demo"):
        assert main([command, "--help"]) == 0


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_python_block_runs_as_written(page):
    (code,) = _blocks(page, "python")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code + "\nassert len(feats) == 4\n"], check=True, env=env, cwd=ROOT,
                   timeout=600)


def test_every_relative_link_of_the_readme_resolves():
    text = (ROOT / "README.md").read_text()
    links = [t for t in re.findall(r"\]\(([^)]+)\)", text) if not t.startswith("http")]
    assert links
    missing = [t for t in links if not (ROOT / t).exists()]
    assert missing == []
