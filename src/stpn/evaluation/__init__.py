"""Local evaluators for ImageNet VID, YouTube-VIS and GOT-10k; they read files, not models."""
from .got10k import evaluate_got10k, plot_success
from .vid import evaluate_vid
from .ytvis import evaluate_ytvis

__all__ = ["evaluate_vid", "evaluate_ytvis", "evaluate_got10k", "plot_success"]
