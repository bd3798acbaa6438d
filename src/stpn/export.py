"""ONNX export along the method's seam, and ONNX-Runtime models that run the graphs.

A model becomes a folder of graphs plus ``export.json`` (what each graph takes and gives):

    embed.onnx      support frames (B, 3, H, W) -> support tokens, one (B, n_s, d_s) per stage
                    the predictor reads (the unprompted backbone; B is dynamic)
    predictor.onnx  support tokens (1, K, n_s, d_s) [+ offsets (1, K)] -> prompts: one (1, N_P, D)
                    (shallow) or one per stage (deep); K is fixed at export (``num_support``)
    and the prompted pass of the task (the baseline, ``prompting=False``, has only this one):
    backbone        prompted.onnx  frame (1, 3, H, W) + prompts -> stage maps (1, C_s, h_s, w_s)
    detector        detector.onnx  frame (3, H, W) in [0, 1] + prompts -> boxes (n, 4) exclusive
                    xyxy in frame pixels, labels (n,) 1-based, scores (n,); embed.onnx then takes
                    frames in [0, 1] too and applies the detector's resize, normalisation and padding
    segmenter       segmenter.onnx as detector.onnx, + masks (n, 1, H, W) probabilities at the frame's
                    size and embeddings (n, D) for association
    tracker         template.onnx  template crop (1, 3, t, t) -> template tokens
                    head.onnx      template tokens + search crop (1, 3, s, s) + prompts -> score
                                   logits (1, 1, h, w), size and offset maps (1, 2, h, w)

The support stream (which frames, when to refresh, the cache of embedded frames) stays in Python
(``stpn.core.SupportStream``) and calls the graphs, so ``OnnxTracker`` plugs into the same
tracking loop (``stpn.tracking.tracker``) and the GOT-10k adapter, ``OnnxDetector`` runs
the three test-time modes as ``stpn.detection.inference.predict_video``, and ``OnnxSegmenter``
feeds ``stpn.segmentation.inference.segment_video`` (association stays in Python).

Sizes: frame and crop sides are fixed at export (``size``); the number of embedded frames is
dynamic. Prompt depth ``deep_block`` is not exported. Export uses ``torch.onnx.export``
(TorchScript-based, opset 17, the path torchvision's detection models export through).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .core.onnx import OnnxSTPN, _flat_prompts, _nested_prompts, _session, read_manifest  # noqa: F401 - also stpn.export's
from .data.types import atomic_path
from .detection.onnx import OnnxDetector  # noqa: F401 - the runtime models, importable from here as before
from .segmentation.onnx import OnnxSegmenter  # noqa: F401
from .tracking.onnx import OnnxTracker  # noqa: F401

OPSET = 17
TASKS = ("backbone", "detector", "segmenter", "tracker")


class EmbedGraph(nn.Module):
    """Unprompted pass: frames (B, 3, H, W) -> support tokens per support stage (B, n_s, d_s).
    ``prepare`` turns the frames into the backbone's input first (the detector's transform)."""

    def __init__(self, stpn, prepare=None):
        super().__init__()
        self.stpn, self.prepare = stpn, prepare

    def forward(self, frames):
        x = frames if self.prepare is None else self.prepare(frames)
        tokens, _ = self.stpn.encode_support(x[None])
        return tuple(tokens[s][0] for s in self.stpn.support_stages)


class PredictorGraph(nn.Module):
    """Support tokens (1, K, n_s, d_s) per support stage [+ offsets (1, K)] -> flat prompts."""

    def __init__(self, stpn, grids: dict):
        super().__init__()
        self.stpn, self.grids = stpn, grids

    def forward(self, *inputs):
        stages = self.stpn.support_stages
        tokens = dict(zip(stages, inputs[:len(stages)]))
        offsets = inputs[len(stages)] if len(inputs) > len(stages) else None
        return _flat_prompts(self.stpn.predict_prompts(tokens, self.grids, offsets))


class TrackerPredictorGraph(nn.Module):
    """A target-supports tracker's predictor: support tokens (1, K, n_s, d_s) per support stage,
    the supports' boxes (1, K, 4) in the search crop's units [+ offsets (1, K)] -> flat prompts."""

    def __init__(self, tracker, grids: dict):
        super().__init__()
        self.tracker, self.grids = tracker, grids

    def forward(self, *inputs):
        stages = self.tracker.stpn.support_stages
        tokens = dict(zip(stages, inputs[:len(stages)]))
        boxes = inputs[len(stages)]
        offsets = inputs[len(stages) + 1] if len(inputs) > len(stages) + 1 else None
        out = self.tracker.support_prompts(tokens, self.grids, boxes, offsets)
        if self.tracker.support_map:  # the prompts, then the search map
            return (*_flat_prompts(out.prompts), out.search_map)
        return _flat_prompts(out)


class PromptedGraph(nn.Module):
    def __init__(self, stpn):
        super().__init__()
        self.stpn = stpn

    def forward(self, frame, *prompts):
        prompts = _nested_prompts(self.stpn, prompts) if prompts else None
        return tuple(self.stpn.backbone(frame, prompts))


class DetectorGraph(nn.Module):
    """One frame in [0, 1] + prompts -> boxes, labels, scores (the detector's own post-processing)."""

    def __init__(self, det):
        super().__init__()
        self.det = det

    def forward(self, frame, *prompts):
        det = self.det
        size = tuple(frame.shape[-2:])
        images, _ = det.transform([frame])
        prompts = _nested_prompts(det.stpn, prompts) if prompts else None
        features = det.backbone.features(det.stpn.backbone(images.tensors, prompts))
        out = det._heads(images, features, None, [size])[0]
        return tuple(out[k] for k in self.outputs)

    outputs = ("boxes", "labels", "scores")


class SegmenterGraph(DetectorGraph):
    """One frame in [0, 1] + prompts -> boxes, labels, scores, masks, embeddings."""

    outputs = ("boxes", "labels", "scores", "masks", "embeddings")


class TemplateGraph(nn.Module):
    def __init__(self, tracker):
        super().__init__()
        self.tracker = tracker

    def forward(self, template):
        return self.tracker.embed_template(template)


class HeadGraph(nn.Module):
    def __init__(self, tracker):
        super().__init__()
        self.tracker = tracker

    def forward(self, template_tokens, search, *prompts):
        from .tracking.model import SupportPrompts
        stpn = self.tracker.stpn
        if prompts and self.tracker.support_map:  # the last input is the search map
            nested = SupportPrompts(_nested_prompts(stpn, prompts[:-1]), prompts[-1])
        else:
            nested = _nested_prompts(stpn, prompts) if prompts else None
        out = self.tracker.head_forward(template_tokens, search, nested)
        return out["score"], out["size"], out["offset"]


@contextmanager
def _constant_pos_embeds():
    """timm resamples a ViT's position embedding to the input's grid with an antialiased bicubic
    interpolation, which ONNX has no operator for. A graph's grid is fixed at export: resample
    eagerly once (the first, eager call) and let the export take the result as a constant."""
    import timm.models.vision_transformer as vt
    original, cache = vt.resample_abs_pos_embed, {}

    def resample(posemb, new_size, *args, **kwargs):
        key = (id(posemb), tuple(int(s) for s in new_size))
        if key not in cache:
            with torch.no_grad():
                cache[key] = original(posemb, new_size, *args, **kwargs).detach()
        return cache[key]

    vt.resample_abs_pos_embed = resample
    try:
        yield
    finally:
        vt.resample_abs_pos_embed = original


def _export_graph(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                  dynamic: dict | None = None) -> None:
    """One graph, written atomically (a temporary file renamed into place). The module is put in
    eval mode (the exporter restores the mode it found, recursively, on the wrapped model too)."""
    module.eval()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        torch.backends.mha.set_fastpath_enabled(False)  # nn.MultiheadAttention's fused kernel has no ONNX op
        with torch.no_grad(), warnings.catch_warnings(), _constant_pos_embeds(), atomic_path(path) as tmp:
            module(*args)  # eager: fills the position-embedding cache
            # tracing warns at every Python branch on a shape: the sizes are fixed at export by design
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # and torch/torchvision warn while traced (tensor copies, shape inference); the
            # TorchScript-based exporter (torchvision's detection models export through it) is deprecated
            for category in (UserWarning, FutureWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category)
            torch.onnx.export(module, args, tmp, input_names=inputs, output_names=outputs, opset_version=OPSET,
                              dynamic_axes=dynamic or None, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _support_graphs(stpn, example: torch.Tensor, num_support: int, out: Path, prepare=None,
                    tracker=None) -> tuple[dict, tuple]:
    """embed.onnx and predictor.onnx for frames like ``example`` (1, 3, H, W); their manifest
    entry and the example prompts (for tracing the prompted graph). ``tracker``: a tracker that
    embeds its supports' boxes (its predictor graph takes them as ``boxes``)."""
    if stpn.prompt_depth == "deep_block":
        raise ValueError("ONNX export supports prompt_depth shallow and deep, not deep_block")
    stages = stpn.support_stages
    token_names = [f"tokens_{s}" for s in stages]
    embed = EmbedGraph(stpn, prepare).eval()
    # traced with two frames: a batch of one would let the tracer fold broadcasts over the batch
    _export_graph(embed, (torch.cat([example, example.flip(-1)]),), out / "embed.onnx", ["frames"], token_names,
                  {"frames": {0: "batch"}, **{n: {0: "batch"} for n in token_names}})
    with torch.no_grad():
        x = example if prepare is None else prepare(example)
        _, grids = stpn.encode_support(x[None])
        tokens = tuple(t[:, None].expand(-1, num_support, -1, -1).contiguous() for t in embed(example))
    args, names = tokens, list(token_names)
    boxes = tracker is not None and tracker.support_box
    graph = TrackerPredictorGraph(tracker, grids) if boxes else PredictorGraph(stpn, grids)
    if boxes:  # traced with distinct boxes, so that no box is folded into a constant
        args, names = (*args, torch.rand(1, num_support, 4, generator=torch.Generator().manual_seed(1))), names + ["boxes"]
    offsets = stpn.predictor_name == "decoder" or boxes  # the decoder and the box embedding (the age) read them
    if offsets:
        args, names = (*args, torch.arange(num_support, dtype=torch.long)[None] - num_support), names + ["offsets"]
    with torch.no_grad():
        prompts = graph(*args)
    search_map = tracker is not None and tracker.support_map
    n = len(prompts) - search_map
    prompt_names = ["prompts"] if stpn.prompt_depth == "shallow" else [f"prompts_{s}" for s in range(n)]
    prompt_names += ["search_map"] if search_map else []
    _export_graph(graph.eval(), args, out / "predictor.onnx", names, prompt_names)
    return {"support_stages": list(stages), "grids": {str(s): list(g) for s, g in grids.items()},
            "num_support": num_support, "offsets": offsets, "boxes": boxes,
            "search_map": search_map,
            "prompt_depth": stpn.prompt_depth, "prompts": prompt_names}, prompts


def export_onnx(model: nn.Module, out: str | Path, size: tuple[int, int] | None = None, num_support: int = 4,
                extra: dict | None = None) -> Path:
    """Write ``model`` (an ``STPN``, ``STPNDetector`` or ``STPNTracker``) as ONNX graphs and
    ``export.json`` into the folder ``out``. ``size`` is the frame (H, W) for a backbone or a
    detector (a tracker's crop sizes are its own); ``num_support`` the K of the predictor graph.
    ``extra`` goes into the manifest (e.g. the run's test-time K, S, refresh)."""
    from .core import STPN
    from .detection.model import STPNDetector
    from .segmentation.model import STPNSegmenter
    from .tracking.model import STPNTracker

    stpn = model if isinstance(model, STPN) else getattr(model, "stpn", None)
    if stpn is not None and stpn.prompting and not stpn.reads_support:
        raise ValueError("static prompts (model.predictor: static) cannot be exported yet: their predictor graph "
                         "has no input; export a model with a dynamic predictor, or run it in PyTorch")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    if isinstance(model, STPNTracker):
        task, stpn = "tracker", model.stpn
    elif isinstance(model, STPNSegmenter):
        task, stpn = "segmenter", model.stpn
    elif isinstance(model, STPNDetector):
        task, stpn = "detector", model.stpn
    elif isinstance(model, STPN):
        task, stpn = "backbone", model
    else:
        raise TypeError(f"export_onnx takes an STPN, an STPNDetector (or STPNSegmenter) or an STPNTracker, got "
                        f"{type(model).__name__}")
    if task != "tracker" and size is None:
        raise ValueError(f"exporting a {task} needs the frame size (H, W)")
    gen = torch.Generator().manual_seed(0)
    manifest = {"format": "stpn-onnx/1", "task": task, "opset": OPSET, "prompting": stpn.prompting,
                **(extra or {})}
    prompts = ()
    if task == "tracker":
        s, t = model.search_size, model.template_size
        manifest.update(template_size=t, search_size=s, template_factor=model.template_factor,
                        search_factor=model.search_factor, mean=list(model.mean), std=list(model.std),
                        supports=model.supports, confidence=model.confidence)
        search = torch.rand(1, 3, s, s, generator=gen)
        if stpn.prompting:
            c = model.support_size
            manifest["support"], prompts = _support_graphs(stpn, torch.rand(1, 3, c, c, generator=gen), num_support,
                                                           out, tracker=model)
        template = torch.rand(1, 3, t, t, generator=gen)
        _export_graph(TemplateGraph(model), (template,), out / "template.onnx", ["template"], ["template_tokens"])
        with torch.no_grad():
            tokens = model.embed_template(template)
        _export_graph(HeadGraph(model), (tokens, search, *prompts), out / "head.onnx",
                      ["template_tokens", "search", *manifest.get("support", {}).get("prompts", [])],
                      ["score", "size", "offset"])
        manifest["graphs"] = ["template.onnx", "head.onnx"]
    else:
        H, W = size
        manifest["size"] = [H, W]
        frame = torch.rand(3, H, W, generator=gen)
        prepare = None
        if task in ("detector", "segmenter"):
            images, _ = model.transform([frame])
            sizes, padded = images.image_sizes, images.tensors.shape[-2:]
            prepare = lambda frames: model.transform_support([frames], sizes, padded)[0]  # noqa: E731
        if stpn.prompting:
            manifest["support"], prompts = _support_graphs(stpn, frame[None], num_support, out, prepare)
        names = manifest.get("support", {}).get("prompts", [])
        if task in ("detector", "segmenter"):
            graph = (SegmenterGraph if task == "segmenter" else DetectorGraph)(model)
            _export_graph(graph, (frame, *prompts), out / f"{task}.onnx", ["frame", *names], list(graph.outputs),
                          {k: {0: "n"} for k in graph.outputs})
            manifest["graphs"] = [f"{task}.onnx"]
        else:
            maps = [f"map_{s}" for s in range(len(stpn.backbone.out_indices))]
            _export_graph(PromptedGraph(stpn), (frame[None], *prompts), out / "prompted.onnx", ["frame", *names], maps)
            manifest["graphs"] = ["prompted.onnx"]
    if stpn.prompting:
        manifest["graphs"] = ["embed.onnx", "predictor.onnx", *manifest["graphs"]]
    from .data.types import write_json
    write_json(out / "export.json", manifest)
    return out


