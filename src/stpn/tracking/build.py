"""Trackers from configs: the ``tracking:`` section, the one-stream ViT tracker, loading a run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..engine.config import Config
from ..engine.runs import load_run_model
from ..engine.tasks import Section
from ..engine.trainer import resolve_device
from .model import STPNTracker


@dataclass
class TrackingSection(Section):
    """``tracking:`` in a config."""

    template_size: int = 128
    search_size: int = 256
    template_factor: float = 2.0  # crop side / sqrt(w h) of the target
    search_factor: float = 4.0
    head_channels: int = 64
    max_gap: int = 50  # training: template frame at most this many frames before the search frame
    samples_per_video: int = 1  # training: template/search pairs per video and epoch
    center_jitter: float = 1.0  # training: search-centre shift, up to +-center_jitter/2 x sqrt(w h)
    scale_jitter: float = 0.25  # training: search-size jitter, exp(N(0, scale_jitter))
    # training: "shared" cuts every support crop with the search crop's jitter (each around its own
    # frame's box), so that supports sit where the tracking loop puts them, on the same recent
    # positions as the search region; "independent" jitters each crop on its own
    support_jitter: str = "shared"
    # where prompts come from (stpn.tracking.model): "target" (crops of past frames centred on the
    # target, template scale) or "search" (past search crops, the earlier design)
    supports: str = "target"
    support_box: bool = True  # target supports: embed where each support's target was in the search crop
    prompt_gate: bool = False  # scale search tokens by their likeness to the prompts before the head
    support_map: bool = True  # support_box: also add each support, as a bump at its box, to the search tokens
    confidence: float = 0.5  # test: a frame enters the target memory only when the heat-map peak is above this
    # training: T consecutive search frames per sample (one template); frame t's supports are the K
    # most recent visible grid frames before t, cut around the true box moved by the error model
    sequence_length: int = 1
    # training, target supports: the error model of the tracker's boxes on support frames: centre
    # shift ~ N(0, s) x sqrt(w h) per axis, size x exp(N(0, z)); [s, z]
    support_error: list = field(default_factory=lambda: [0.1, 0.1])
    # training, target supports: each earlier grid frame counts as admitted by the test-time gate
    # with this chance (frame 0 always), so that supports come at the ages the gate leaves them
    support_admit: float = 0.6

    def problems(self):
        return [(k, m) for ok, k, m in (
            (self.template_size >= 1 and self.search_size >= 1, "search_size", "crop sizes must be >= 1"),
            (self.max_gap >= 1, "max_gap", "must be >= 1"),
            (self.samples_per_video >= 1, "samples_per_video", "must be >= 1"),
            (self.support_jitter in ("shared", "independent"), "support_jitter", "must be shared or independent"),
            (self.supports in STPNTracker.SUPPORTS, "supports", f"must be one of {STPNTracker.SUPPORTS}"),
            (0 <= self.confidence < 1, "confidence", "must be in [0, 1)"),
            (self.sequence_length >= 1, "sequence_length", "must be >= 1"),
            (0 < self.support_admit <= 1, "support_admit", "must be in (0, 1]"),
            (len(self.support_error) == 2 and all(e >= 0 for e in self.support_error), "support_error",
             "must be two numbers >= 0: [centre shift, log-size] standard deviations"))
            if not ok]


def build_tracker(cfg: Config) -> STPNTracker:
    m, o = cfg.model, cfg.tracking
    model = STPNTracker(m.backbone, prompting=m.prompting, predictor=m.predictor, num_prompts=m.num_prompts,
                        prompt_depth=m.prompt_depth, pretrained=m.pretrained, support_grad=m.support_grad,
                        template_size=o.template_size, search_size=o.search_size, template_factor=o.template_factor,
                        search_factor=o.search_factor, head_channels=o.head_channels,
                        backbone_kwargs=m.backbone_kwargs, predictor_kwargs=m.predictor_kwargs, mean=m.mean, std=m.std,
                        supports=o.supports, support_box=o.support_box, prompt_gate=o.prompt_gate,
                        support_map=o.support_map, confidence=o.confidence)
    if m.weights:
        from ..core.weights import load_backbone_weights
        load_backbone_weights(model.stpn.backbone, m.weights)
    return model


def load_tracker(weights: str | Path, config: str | Path | None = None, overrides=()) -> tuple[STPNTracker, Config]:
    """(tracker, config) on the config's ``run.device`` from a run's ``model.safetensors`` (or a run
    folder) and its config."""
    model, cfg = load_run_model(weights, config, overrides, "tracking", "tracker", build_tracker)
    return model.to(resolve_device(cfg.run.device)).eval(), cfg
