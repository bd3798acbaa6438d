"""An exported tracker on ONNX Runtime (``stpn export`` of a tracking run; ``stpn track --onnx``)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..core.onnx import OnnxSTPN, _prompt_feeds, _run, _session, read_manifest
from .model import SupportCrops


class OnnxTracker(SupportCrops):
    """An exported ``STPNTracker`` on ONNX Runtime, with the attributes and methods the tracking
    loop (``stpn.tracking.tracker.start/step``, ``Tracker``, ``track_sequence``) uses."""

    def __init__(self, folder: str | Path, providers=None):
        folder = Path(folder)
        m = self.manifest = read_manifest(folder)
        if m["task"] != "tracker":
            raise ValueError(f"{folder}: an exported {m['task']}, not a tracker")
        self.stpn = OnnxSTPN(folder, m, providers)
        self.template_size, self.search_size = m["template_size"], m["search_size"]
        self.template_factor, self.search_factor = m["template_factor"], m["search_factor"]
        self.mean, self.std = tuple(m["mean"]), tuple(m["std"])
        self.supports = m.get("supports", "search")  # exports before target supports had search supports
        self.confidence = m.get("confidence", 0.5)  # the run's memory gate
        self.support_box = bool(self.prompting and (m.get("support") or {}).get("boxes"))
        self.template = _session(folder / "template.onnx", providers)
        self.head = _session(folder / "head.onnx", providers)

    @property
    def prompting(self) -> bool:
        return self.stpn.prompting

    def support_prompts(self, tokens: dict, grids: dict, boxes: torch.Tensor | None = None,
                        offsets: torch.Tensor | None = None):
        from .model import SupportPrompts
        if not self.manifest["support"].get("search_map"):
            return self.stpn.predict_prompts(tokens, grids, offsets, boxes)
        flat = self.stpn.predict_flat(tokens, offsets, boxes)  # the prompts, then the search map
        prompts = flat[0] if self.manifest["support"]["prompt_depth"] == "shallow" else flat[:-1]
        return SupportPrompts(prompts, flat[-1])

    def eval(self):
        return self

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise ValueError("OnnxTracker runs on ONNX Runtime: pass device='cpu' (the tensors it trades are on the CPU)")
        return self

    def embed_template(self, template: torch.Tensor) -> torch.Tensor:
        return _run(self.template, {"template": template})[0]

    def head_forward(self, template_tokens: torch.Tensor, search: torch.Tensor, prompts=None) -> dict:
        from .model import SupportPrompts
        if isinstance(prompts, SupportPrompts):  # the prompts' names, then search_map
            flat = (*((prompts.prompts,) if isinstance(prompts.prompts, torch.Tensor) else tuple(prompts.prompts)),
                    prompts.search_map)
            feeds = dict(zip(self.manifest["support"]["prompts"], flat))
        else:
            feeds = _prompt_feeds(self.manifest, prompts)
        score, size, offset = _run(self.head, {"template_tokens": template_tokens, "search": search, **feeds})
        return {"score": score, "size": size, "offset": offset}
