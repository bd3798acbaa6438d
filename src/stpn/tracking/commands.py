"""Old home of ``load_tracker`` (now ``stpn.tracking.build``), ``print_metrics``
(``stpn.tracking.evaluate``), ``cmd_track``/``parse_box`` (``stpn.tracking.cli``) and the demo's
functions (``stpn.tracking.demo``). The names still resolve for one release, with a FutureWarning."""
from __future__ import annotations

import warnings

_MOVED = {"load_tracker": "build", "print_metrics": "evaluate", "cmd_track": "cli", "parse_box": "cli",
          "demo_config": "demo", "pretrain_config": "demo", "demo_table": "demo", "demo_figures": "demo",
          "plot_curves": "demo", "QUICK_DATA": "demo"}


def __getattr__(name: str):
    if name in _MOVED:
        from . import build, cli, demo, evaluate
        module = {"build": build, "cli": cli, "demo": demo, "evaluate": evaluate}[_MOVED[name]]
        warnings.warn(f"stpn.tracking.commands.{name} moved to {module.__name__}.{name}", FutureWarning, stacklevel=2)
        return getattr(module, name)
    raise AttributeError(f"module 'stpn.tracking.commands' has no attribute {name!r}")
