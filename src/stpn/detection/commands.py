"""Old home of ``load_detector``, ``class_names`` (now ``stpn.detection.build``), ``evaluate_run``,
``print_metrics`` (``stpn.detection.evaluate``) and ``cmd_detect`` (``stpn.detection.cli``): the
names still resolve for one release, with a FutureWarning naming the new module."""
from __future__ import annotations

from .._moved import moved_names
from . import build, cli, evaluate

__getattr__ = moved_names(__name__, {"load_detector": build, "class_names": build, "evaluate_run": evaluate, "print_metrics": evaluate,
                                         "cmd_detect": cli})
