"""Single-object tracking: a one-stream ViT tracker with STPN prompts from past search regions."""
from .model import STPNTracker, tracking_loss
from .tracker import TrackState, Tracker, start, step, track_frames

__all__ = ["STPNTracker", "TrackState", "Tracker", "start", "step", "track_frames", "tracking_loss"]
