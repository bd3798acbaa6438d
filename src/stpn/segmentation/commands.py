"""Old home of ``evaluate_run``, ``results_entry``, ``print_metrics`` (now
``stpn.segmentation.evaluate``), ``cmd_segment`` (``stpn.segmentation.cli``), ``write_png``
(``stpn.segmentation.inference``) and ``class_names`` (``stpn.detection.build``): the names still
resolve for one release, with a FutureWarning."""
from __future__ import annotations

from .._moved import moved_names
from ..detection import build as detection_build
from . import cli, evaluate, inference

__getattr__ = moved_names(__name__, {"evaluate_run": evaluate, "results_entry": evaluate, "print_metrics": evaluate,
                                         "cmd_segment": cli, "write_png": inference, "class_names": detection_build})
