"""An exported tracker on ONNX Runtime (``stpn export`` of a tracking run; ``stpn track --onnx``)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..core.onnx import OnnxSTPN, _prompt_feeds, _run, _session, read_manifest


class OnnxTracker:
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
        self.support_box = bool(self.prompting and (m.get("support") or {}).get("boxes"))
        self.template = _session(folder / "template.onnx", providers)
        self.head = _session(folder / "head.onnx", providers)

    @property
    def prompting(self) -> bool:
        return self.stpn.prompting

    @property
    def support_size(self) -> int:
        return self.template_size if self.supports == "target" else self.search_size

    @property
    def support_factor(self) -> float:
        return self.template_factor if self.supports == "target" else self.search_factor

    def support_prompts(self, tokens: dict, grids: dict, boxes: torch.Tensor | None = None,
                        offsets: torch.Tensor | None = None):
        from .model import SupportPrompts
        if not self.manifest["support"].get("search_map"):
            return self.stpn.predict_prompts(tokens, grids, offsets, boxes)
        K = next(iter(tokens.values())).shape[1]
        if K != self.stpn.num_support:
            raise ValueError(f"the predictor graph was exported for K={self.stpn.num_support} support frames, got {K}")
        # the predictor graph's outputs: the prompts, then the search map (shallow: out is the first only)
        flat = _run(self.stpn.predictor, self._predictor_feeds(tokens, boxes, offsets))
        prompts = flat[0] if self.manifest["support"]["prompt_depth"] == "shallow" else flat[:-1]
        return SupportPrompts(prompts, flat[-1])

    def _predictor_feeds(self, tokens, boxes, offsets) -> dict:
        support = self.manifest["support"]
        feeds = {f"tokens_{s}": tokens[s] for s in self.stpn.support_stages}
        if support.get("boxes"):
            feeds["boxes"] = boxes.float()
        if support["offsets"]:
            B, K = next(iter(tokens.values())).shape[:2]
            feeds["offsets"] = torch.zeros(B, K, dtype=torch.long) if offsets is None else offsets.long()
        return feeds

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
