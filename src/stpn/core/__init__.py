"""The paper's mechanism: promptable backbones, DVP predictors, support sampling, streaming.

Knows nothing of tasks, datasets or the command line.
"""
from .backbones import create_backbone, normalization
from .model import STPN
from .predictors import (
    PREDICTORS,
    AttentionPredictor,
    DecoderPredictor,
    MixerPredictor,
    TopKMeanPredictor,
    build_predictor,
)
from .sampling import (
    POLICIES,
    SupportConfig,
    causal_support,
    global_support,
    local_support,
    support_indices,
    train_bilateral_support,
)
from .streaming import SupportStream
from .swin import PromptedSwin
from .vit import PromptedViT

__all__ = [
    "STPN", "PromptedSwin", "PromptedViT", "create_backbone", "normalization", "SupportStream",
    "PREDICTORS", "AttentionPredictor", "TopKMeanPredictor", "MixerPredictor", "DecoderPredictor",
    "build_predictor", "POLICIES", "SupportConfig", "support_indices", "global_support",
    "local_support", "causal_support", "train_bilateral_support",
]
