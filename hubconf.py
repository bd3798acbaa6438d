"""torch.hub entry points for stpn.

    import torch
    backbone = torch.hub.load("PATH/TO/stpn", "stpn_backbone", source="local")          # STPN Swin-T, random weights
    detector = torch.hub.load("PATH/TO/stpn", "detector", source="local",
                              weights="runs/demo/stpn/model.safetensors")               # a trained run
    released = torch.hub.load("PATH/TO/stpn", "detector", source="local",
                              weights="stpn_swint_adam_9x.pth", config="vid_swin_t_released")

Every entry point builds untrained weights by default (``pretrained=False``: no download);
``weights`` loads a local file (a run's ``model.safetensors`` or run folder, or, for the
detector, an mmdetection checkpoint with the config that describes it). ``pretrained=True`` on
the backbone loads timm's ImageNet weights (through the hub; not STPN weights: none are hosted).
Models are returned in eval mode on the CPU, except where a config's ``run.device`` says otherwise.
"""
import importlib.util
import sys
from pathlib import Path

dependencies = ["torch", "torchvision", "timm", "safetensors", "scipy", "pycocotools"]

if importlib.util.find_spec("stpn") is None:  # not installed: the copy beside this file (torch.hub from a clone)
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))


def stpn_backbone(backbone: str = "swin_tiny_patch4_window7_224", pretrained: bool = False, **kwargs):
    """The prompted backbone (``stpn.STPN``): ``model(frames, support_frames)`` -> stage maps.
    ``kwargs`` go to ``STPN`` (predictor, num_prompts, prompt_depth, prompting, backbone_kwargs, ...)."""
    from stpn import STPN
    return STPN(backbone=backbone, pretrained=pretrained, **kwargs).eval()


def _task_model(task: str, default_config: str, weights, config, overrides):
    from stpn.engine.config import load_config
    from stpn.engine.registry import get_task
    if weights is not None:
        if task == "detection":
            from stpn.detection.build import load_detector
            return load_detector(weights, config, list(overrides))[0]
        return get_task(task).load(weights, config, list(overrides))[0]
    cfg = load_config(config or default_config, ["model.pretrained=false", *overrides])
    if cfg.task != task:
        raise ValueError(f"{config} is a {cfg.task} config, not a {task} one")
    return get_task(task).build_model(cfg).eval()


def detector(weights=None, config=None, overrides=()):
    """Faster R-CNN + FPN on STPN (``stpn.detection.STPNDetector``). Without ``weights``: an
    untrained detector of ``config`` (default: the tiny CPU demo's, ``demo_cpu``)."""
    return _task_model("detection", "demo_cpu", weights, config, overrides)


def segmenter(weights=None, config=None, overrides=()):
    """Mask R-CNN + FPN on STPN for video instance segmentation (default config: ``vis_demo_cpu``)."""
    return _task_model("segmentation", "vis_demo_cpu", weights, config, overrides)


def tracker(weights=None, config=None, overrides=()):
    """The one-stream ViT tracker on STPN (default config: ``sot_demo_cpu``); drive it with
    ``stpn.tracking.Tracker(model)``."""
    return _task_model("tracking", "sot_demo_cpu", weights, config, overrides)
