"""Benchmark layouts, plain videos, the deteriorated-video generator and corruptions.

Usable without a model: nothing here imports a network.
"""
from .corrupt import CORRUPTIONS, corrupt, corrupt_video
from .got10k import read_got10k, write_got10k, write_got10k_results, zip_results
from .synth import SynthConfig, synth_video, write_synth
from .types import AnnotationError, ArrayFrames, FrameTargets, ImageFiles, Video, atomic_write
from .vid import VID_NAMES, VID_WNIDS, read_vid, read_vid_detections, write_vid, write_vid_detections
from .video import VideoFile, open_video, write_video
from .ytvis import read_ytvis, write_ytvis, write_ytvis_results

__all__ = [
    "Video", "FrameTargets", "ImageFiles", "ArrayFrames", "atomic_write", "AnnotationError",
    "read_vid", "write_vid", "read_vid_detections", "write_vid_detections", "VID_WNIDS", "VID_NAMES",
    "read_ytvis", "write_ytvis", "write_ytvis_results",
    "read_got10k", "write_got10k", "write_got10k_results", "zip_results",
    "VideoFile", "open_video", "write_video", "SynthConfig", "synth_video", "write_synth",
    "CORRUPTIONS", "corrupt", "corrupt_video",
]
