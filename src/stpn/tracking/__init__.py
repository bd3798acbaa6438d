"""Single-object tracking: a one-stream ViT tracker with STPN prompts from past search regions.

The names below are imported on first use, so ``stpn track --help`` (which reads only
``stpn.tracking.cli``) does not load torch.
"""
from __future__ import annotations

_WHERE = {"STPNTracker": ".model", "tracking_loss": ".model", "TrackState": ".tracker", "Tracker": ".tracker",
          "start": ".tracker", "step": ".tracker", "track_frames": ".tracker"}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        from . import model, tracker
        return getattr(model if _WHERE[name] == ".model" else tracker, name)
    raise AttributeError(f"module 'stpn.tracking' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
