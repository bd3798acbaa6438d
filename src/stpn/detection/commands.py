"""Old home of ``load_detector``, ``class_names`` (now ``stpn.detection.build``), ``evaluate_run``,
``print_metrics`` (``stpn.detection.evaluate``) and ``cmd_detect`` (``stpn.detection.cli``).
The names still resolve for one release, with a FutureWarning naming the new module."""
from __future__ import annotations

import warnings

_MOVED = {"load_detector": "build", "class_names": "build", "evaluate_run": "evaluate", "print_metrics": "evaluate",
          "cmd_detect": "cli"}


def __getattr__(name: str):
    if name in _MOVED:
        from . import build, cli, evaluate
        module = {"build": build, "cli": cli, "evaluate": evaluate}[_MOVED[name]]
        warnings.warn(f"stpn.detection.commands.{name} moved to {module.__name__}.{name}", FutureWarning, stacklevel=2)
        return getattr(module, name)
    raise AttributeError(f"module 'stpn.detection.commands' has no attribute {name!r}")
