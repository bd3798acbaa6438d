"""Old home of ``evaluate_run``, ``results_entry``, ``print_metrics`` (now
``stpn.segmentation.evaluate``), ``write_png``, ``cmd_segment`` (``stpn.segmentation.cli``) and
``class_names`` (``stpn.detection.build``). The names still resolve for one release, with a FutureWarning."""
from __future__ import annotations

import warnings

_MOVED = {"evaluate_run": "stpn.segmentation.evaluate", "results_entry": "stpn.segmentation.evaluate",
          "print_metrics": "stpn.segmentation.evaluate", "write_png": "stpn.segmentation.cli",
          "cmd_segment": "stpn.segmentation.cli", "class_names": "stpn.detection.build"}


def __getattr__(name: str):
    if name in _MOVED:
        from ..detection import build as detection_build
        from . import cli, evaluate
        module = {"stpn.segmentation.evaluate": evaluate, "stpn.segmentation.cli": cli,
                  "stpn.detection.build": detection_build}[_MOVED[name]]
        warnings.warn(f"stpn.segmentation.commands.{name} moved to {_MOVED[name]}.{name}", FutureWarning, stacklevel=2)
        return getattr(module, name)
    raise AttributeError(f"module 'stpn.segmentation.commands' has no attribute {name!r}")
