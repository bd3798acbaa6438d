"""Old home of ``load_tracker`` (now ``stpn.tracking.build``), ``print_metrics``
(``stpn.tracking.evaluate``), ``cmd_track``/``parse_box`` (``stpn.tracking.cli``) and the demo's
functions (``stpn.tracking.demo``): the names still resolve for one release, with a FutureWarning."""
from __future__ import annotations

from .._moved import moved_names
from . import build, cli, demo, evaluate

__getattr__ = moved_names(__name__, {"load_tracker": build, "print_metrics": evaluate, "cmd_track": cli, "parse_box": cli,
                                         **{n: demo for n in ("demo_config", "pretrain_config", "demo_table", "demo_figures",
                                                              "plot_curves", "QUICK_DATA")}})
