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
    tracker         template.onnx  template crop (1, 3, t, t) -> template tokens
                    head.onnx      template tokens + search crop (1, 3, s, s) + prompts -> score
                                   logits (1, 1, h, w), size and offset maps (1, 2, h, w)

The support stream (which frames, when to refresh, the cache of embedded frames) stays in Python
(``stpn.core.SupportStream``) and calls the graphs, so ``OnnxTracker`` plugs into the same
tracking loop (``stpn.tracking.tracker``) and the GOT-10k adapter, and ``OnnxDetector`` runs
the three test-time modes as ``stpn.detection.task.predict_video``.

Sizes: frame and crop sides are fixed at export (``size``); the number of embedded frames is
dynamic. Prompt depth ``deep_block`` is not exported. Export uses ``torch.onnx.export``
(TorchScript-based, opset 17, the path torchvision's detection models export through).
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .core.streaming import SupportStream

OPSET = 17
TASKS = ("backbone", "detector", "tracker")


# graphs -----------------------------------------------------------------------------------------
def _flat_prompts(prompts) -> tuple:
    return (prompts,) if isinstance(prompts, torch.Tensor) else tuple(prompts)


def _nested_prompts(stpn, flat):
    return flat[0] if stpn.prompt_depth == "shallow" else list(flat)


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
        return out["boxes"], out["labels"], out["scores"]


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
        stpn = self.tracker.stpn
        out = self.tracker.head_forward(template_tokens, search, _nested_prompts(stpn, prompts) if prompts else None)
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
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # nn.MultiheadAttention's fused kernel has no ONNX op
        with torch.no_grad(), warnings.catch_warnings(), _constant_pos_embeds():
            module(*args)  # eager: fills the position-embedding cache
            # tracing warns at every Python branch on a shape: the sizes are fixed at export by design
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # and torch/torchvision warn while traced (tensor copies, shape inference); the
            # TorchScript-based exporter (torchvision's detection models export through it) is deprecated
            for category in (UserWarning, FutureWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category)
            torch.onnx.export(module, args, tmp, input_names=inputs, output_names=outputs, opset_version=OPSET,
                              dynamic_axes=dynamic or None, dynamo=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; a written graph is an ordinary file
        os.replace(tmp, path)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        if os.path.exists(tmp):
            os.remove(tmp)


def _support_graphs(stpn, example: torch.Tensor, num_support: int, out: Path, prepare=None) -> tuple[dict, tuple]:
    """embed.onnx and predictor.onnx for frames like ``example`` (1, 3, H, W); their manifest
    entry and the example prompts (for tracing the prompted graph)."""
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
    if stpn.predictor_name == "decoder":
        args, names = (*tokens, torch.arange(num_support, dtype=torch.long)[None] - num_support), names + ["offsets"]
    with torch.no_grad():
        prompts = PredictorGraph(stpn, grids)(*args)
    prompt_names = ["prompts"] if stpn.prompt_depth == "shallow" else [f"prompts_{s}" for s in range(len(prompts))]
    _export_graph(PredictorGraph(stpn, grids).eval(), args, out / "predictor.onnx", names, prompt_names)
    return {"support_stages": list(stages), "grids": {str(s): list(g) for s, g in grids.items()},
            "num_support": num_support, "offsets": stpn.predictor_name == "decoder",
            "prompt_depth": stpn.prompt_depth, "prompts": prompt_names}, prompts


def export_onnx(model: nn.Module, out: str | Path, size: tuple[int, int] | None = None, num_support: int = 4,
                extra: dict | None = None) -> Path:
    """Write ``model`` (an ``STPN``, ``STPNDetector`` or ``STPNTracker``) as ONNX graphs and
    ``export.json`` into the folder ``out``. ``size`` is the frame (H, W) for a backbone or a
    detector (a tracker's crop sizes are its own); ``num_support`` the K of the predictor graph.
    ``extra`` goes into the manifest (e.g. the run's test-time K, S, refresh)."""
    from .core import STPN
    from .detection.model import STPNDetector
    from .tracking.model import STPNTracker

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    if isinstance(model, STPNTracker):
        task, stpn = "tracker", model.stpn
    elif isinstance(model, STPNDetector):
        task, stpn = "detector", model.stpn
    elif isinstance(model, STPN):
        task, stpn = "backbone", model
    else:
        raise TypeError(f"export_onnx takes an STPN, an STPNDetector or an STPNTracker, got {type(model).__name__}")
    if task != "tracker" and size is None:
        raise ValueError(f"exporting a {task} needs the frame size (H, W)")
    gen = torch.Generator().manual_seed(0)
    manifest = {"format": "stpn-onnx/1", "task": task, "opset": OPSET, "prompting": stpn.prompting,
                **(extra or {})}
    prompts = ()
    if task == "tracker":
        s, t = model.search_size, model.template_size
        manifest.update(template_size=t, search_size=s, template_factor=model.template_factor,
                        search_factor=model.search_factor, mean=list(model.mean), std=list(model.std))
        search = torch.rand(1, 3, s, s, generator=gen)
        if stpn.prompting:
            manifest["support"], prompts = _support_graphs(stpn, search, num_support, out)
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
        if task == "detector":
            images, _ = model.transform([frame])
            sizes, padded = images.image_sizes, images.tensors.shape[-2:]
            prepare = lambda frames: model.transform_support([frames], sizes, padded)[0]  # noqa: E731
        if stpn.prompting:
            manifest["support"], prompts = _support_graphs(stpn, frame[None], num_support, out, prepare)
        names = manifest.get("support", {}).get("prompts", [])
        if task == "detector":
            _export_graph(DetectorGraph(model), (frame, *prompts), out / "detector.onnx", ["frame", *names],
                          ["boxes", "labels", "scores"], {"boxes": {0: "n"}, "labels": {0: "n"}, "scores": {0: "n"}})
            manifest["graphs"] = ["detector.onnx"]
        else:
            maps = [f"map_{s}" for s in range(len(stpn.backbone.out_indices))]
            _export_graph(PromptedGraph(stpn), (frame[None], *prompts), out / "prompted.onnx", ["frame", *names], maps)
            manifest["graphs"] = ["prompted.onnx"]
    if stpn.prompting:
        manifest["graphs"] = ["embed.onnx", "predictor.onnx", *manifest["graphs"]]
    from .data.types import write_json
    write_json(out / "export.json", manifest)
    return out


# runtime ----------------------------------------------------------------------------------------
def _session(path: Path, providers=None):
    import onnxruntime as ort
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such graph (export the model with `stpn export` first)")
    try:
        return ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime's errors (InvalidProtobuf, Fail, ...) share no base class
        raise ValueError(f"{path}: not a readable ONNX graph ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); export it again") from None


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "export.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; {folder} is not a folder written by `stpn export`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: malformed JSON ({err}); export the model again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "stpn-onnx/1":
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{path}: format {found!r}, expected 'stpn-onnx/1'")
    missing = [k for k in ("task", "prompting", "graphs") if k not in manifest]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; export the model again")
    return manifest


def _run(session, feeds: dict) -> list[torch.Tensor]:
    return [torch.from_numpy(np.asarray(a)) for a in session.run(None, {k: v.detach().cpu().numpy()
                                                                        for k, v in feeds.items()})]


class OnnxSTPN:
    """The support half of STPN on ONNX Runtime, with the interface ``SupportStream`` calls
    (``encode_support``, ``predict_prompts``, ``support_stages``, ``prompting``)."""

    def __init__(self, folder: str | Path, manifest: dict | None = None, providers=None):
        folder = Path(folder)
        self.manifest = manifest or read_manifest(folder)
        self.prompting = self.manifest["prompting"]
        support = self.manifest.get("support")
        if self.prompting:
            self.support_stages = support["support_stages"]
            self.num_support = support["num_support"]
            self.embed = _session(folder / "embed.onnx", providers)
            self.predictor = _session(folder / "predictor.onnx", providers)

    def encode_support(self, frames: torch.Tensor):
        """frames (B, K, 3, H, W) -> ({stage: (B, K, n, d)}, {stage: grid})."""
        B, K = frames.shape[:2]
        out = _run(self.embed, {"frames": frames.flatten(0, 1)})
        tokens = {s: t.reshape(B, K, *t.shape[1:]) for s, t in zip(self.support_stages, out)}
        grids = {s: tuple(self.manifest["support"]["grids"][str(s)]) for s in self.support_stages}
        return tokens, grids

    def predict_prompts(self, tokens: dict, grids=None, offsets: torch.Tensor | None = None):
        K = next(iter(tokens.values())).shape[1]
        if K != self.num_support:
            raise ValueError(f"the predictor graph was exported for K={self.num_support} support frames, got {K}")
        feeds = {f"tokens_{s}": tokens[s] for s in self.support_stages}
        if self.manifest["support"]["offsets"]:  # the decoder: offset 0 where unknown, as in PyTorch
            B = next(iter(tokens.values())).shape[0]
            feeds["offsets"] = torch.zeros(B, K, dtype=torch.long) if offsets is None else offsets.long()
        out = _run(self.predictor, feeds)
        return out[0] if self.manifest["support"]["prompt_depth"] == "shallow" else out


def _prompt_feeds(manifest: dict, prompts) -> dict:
    if prompts is None:
        return {}
    return dict(zip(manifest["support"]["prompts"], _flat_prompts(prompts)))


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
        self.template = _session(folder / "template.onnx", providers)
        self.head = _session(folder / "head.onnx", providers)

    @property
    def prompting(self) -> bool:
        return self.stpn.prompting

    def eval(self):
        return self

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise ValueError("OnnxTracker runs on ONNX Runtime: pass device='cpu' (the tensors it trades are on the CPU)")
        return self

    def embed_template(self, template: torch.Tensor) -> torch.Tensor:
        return _run(self.template, {"template": template})[0]

    def head_forward(self, template_tokens: torch.Tensor, search: torch.Tensor, prompts=None) -> dict:
        score, size, offset = _run(self.head, {"template_tokens": template_tokens, "search": search,
                                               **_prompt_feeds(self.manifest, prompts)})
        return {"score": score, "size": size, "offset": offset}


@dataclass
class OnnxDetector:
    """An exported ``STPNDetector`` on ONNX Runtime for frames of the exported size."""

    folder: Path
    providers: list | None = None

    def __post_init__(self):
        self.folder = Path(self.folder)
        m = self.manifest = read_manifest(self.folder)
        if m["task"] != "detector":
            raise ValueError(f"{self.folder}: an exported {m['task']}, not a detector")
        self.stpn = OnnxSTPN(self.folder, m, self.providers)
        self.detector = _session(self.folder / "detector.onnx", self.providers)

    def predict_video(self, video, mode: str = "global", num_support: int | None = None, stride: int = 1,
                      refresh_every: int = 1):
        """Detections of every frame (a generator of the dicts ``predict_video`` yields), support
        frames per ``mode`` as in ``stpn.detection.task.predict_video``. The embedding graph
        prepares every support frame as the offline modes do (``transform_support``); in causal
        mode PyTorch embeds the key frame's own transformed tensor instead, which differs where
        the detector resizes (bilinear either way, sizes rounded differently)."""
        from .detection.task import _image, inclusive_detections
        K = num_support or (self.stpn.num_support if self.stpn.prompting else 1)
        stream = SupportStream(mode, K, stride, refresh_every, len(video)) if self.stpn.prompting else None
        H, W = self.manifest["size"]
        for t in range(len(video)):
            frame = _image(video.frames[t])
            if tuple(frame.shape[-2:]) != (H, W):
                raise ValueError(f"frame {t} is {frame.shape[-1]}x{frame.shape[-2]}; the detector graph was "
                                 f"exported for {W}x{H} frames (stpn export --size)")
            prompts = None
            if stream is not None:
                prompts = stream.prompts_at(self.stpn, t, lambda i: _image(video.frames[i])[None])
            boxes, labels, scores = _run(self.detector, {"frame": frame, **_prompt_feeds(self.manifest, prompts)})
            yield inclusive_detections({"boxes": boxes, "labels": labels, "scores": scores}, H, W)
