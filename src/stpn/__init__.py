"""stpn: spatio-temporal prompting (STPN, ICCV 2023) for robust video features.

The model classes (``stpn.STPN``, ``stpn.PromptedSwin``, ...) are imported on first use, so
``import stpn.evaluation`` or ``import stpn.data.vid`` reads and scores benchmark files without
loading torch.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "STPN", "PromptedSwin", "PromptedViT", "create_backbone", "normalization", "SupportStream",
    "PREDICTORS", "AttentionPredictor", "TopKMeanPredictor", "MixerPredictor", "DecoderPredictor",
    "build_predictor", "POLICIES", "SupportConfig", "support_indices", "global_support",
    "local_support", "causal_support", "train_bilateral_support",
]


def __getattr__(name: str):
    if name in __all__:
        from . import core
        return getattr(core, name)
    raise AttributeError(f"module 'stpn' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
