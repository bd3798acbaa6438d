"""The registry of tasks: which ``Task`` classes exist and which modules add their commands.

A task is a package (``stpn.detection``, ``stpn.tracking``, ...) that declares itself in
``pyproject.toml`` under entry-point groups, the standard plugin mechanism of Python packaging
(a task from another distribution plugs in the same way; its demo, if it has one, in the third):

    [project.entry-points."stpn.tasks"]
    detection = "stpn.detection.task:DetectionTask"      # the engine's hooks (loaded on first use)
    [project.entry-points."stpn.commands"]
    detection = "stpn.detection.cli"                     # add_commands(subparsers); imports nothing heavy
    [project.entry-points."stpn.demos"]
    det = "stpn.detection.demo"                          # stpn demo --task det (stpn.demos.paired)

``register_task(cls)`` adds a class at run time (a test's toy task, a notebook). Nothing here
imports a task: the registry sits below every task and the engine reads tasks through it.
"""
from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

_ADDED: dict[str, type] = {}


@cache
def _group(group: str) -> dict:
    """name -> entry point of one group; read once per process (scanning the installed
    distributions' metadata costs milliseconds, and configs ask for the task names repeatedly)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def register_task(cls: type) -> type:
    """Register a ``Task`` subclass under its ``name`` (usable as a class decorator)."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute 'name' to be registered")
    _ADDED[cls.name] = cls
    get_task.cache_clear()
    return cls


def task_names() -> list[str]:
    """Every registered task's name, sorted."""
    return sorted(set(_group("stpn.tasks")) | set(_ADDED))


@cache
def get_task(name: str):
    """An instance of the task registered as ``name`` (its package is imported on first use)."""
    if name in _ADDED:
        return _ADDED[name]()
    if name not in _group("stpn.tasks"):
        raise ValueError(f"unknown task {name!r}; registered: {', '.join(task_names())} (a package's task is "
                         "declared under [project.entry-points.\"stpn.tasks\"]; reinstall stpn after adding one)")
    return _group("stpn.tasks")[name].load()()


def command_modules() -> list:
    """The modules that add each task's own commands (``add_commands(subparsers)``), in entry-point order."""
    return [ep.load() for ep in _group("stpn.commands").values()]


def demo_names() -> list[str]:
    """The short names of the demos (``stpn demo --task det``), sorted; nothing is imported."""
    return sorted(_group("stpn.demos"))


def demo_module(short: str):
    """The demo module registered as ``short`` (a task's ``demo.py``: ``TASK``, ``METRICS``,
    ``demo_config``, ``pretrain_config``, ``row``, ``demo_table``, ``demo_figures``)."""
    if short not in _group("stpn.demos"):
        raise ValueError(f"unknown demo {short!r}; registered: {', '.join(demo_names())}")
    return _group("stpn.demos")[short].load()

