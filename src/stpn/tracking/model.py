"""A one-stream ViT tracker with STPN prompts (OSTrack-style, on timm's ViT).

    template crop (2x the target, 128 px) --embed--+
                                                   +--> [cls, template, search] + prompts --ViT--> search map --> centre head
    search crop (4x the last box, 256 px) --embed--+
    past target crops --unprompted ViT--> support tokens (+ where the target was) --predictor--> prompts

Template and search tokens go through the backbone together; the prompts (STPN core) come from
past frames only (causal). ``supports="target"`` (default): a support is a crop of a past frame
centred on the target's box there, at the template's scale and size (so it gets the template's
position embedding), and with ``support_box`` that box, mapped into the *current* search crop's
coordinates, is embedded and added to the support's tokens (``BoxEmbed``): the prompts can say
where the target was relative to the region being searched (STARK-ST / MixFormer online
templates, ARTrack's past boxes in crop coordinates). ``supports="search"``: the earlier design,
whole past search crops pooled into position-free prompts. The centre head reads the search
tokens and gives a heat map, a box size and a sub-cell offset per cell; ``prompt_gate`` scales
each search token by its similarity to the prompts' mean first (ODTrack / AQATrack).
``prompting=False`` is the same tracker without prompts: the baseline.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import generalized_box_iou_loss, roi_align

from ..core.backbones import normalization
from ..core.model import STPN
from ..core.timm_api import position_embed
from ..core.vit import PromptedViT

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def to_tensor(frame: np.ndarray, mean=IMAGENET[0], std=IMAGENET[1]) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 normalised with ``mean``/``std`` (of [0, 1] values)."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be (H, W, 3) RGB arrays, got shape {frame.shape}")
    x = torch.from_numpy(np.array(frame, dtype=np.float32)).permute(2, 0, 1).div_(255)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def crop_region(box, factor: float, min_side: float = 8.0) -> np.ndarray:
    """Square region (x0, y0, side) centred on an x,y,w,h box, ``factor`` x sqrt(w h) wide."""
    x, y, w, h = (float(v) for v in box)
    side = max(math.sqrt(max(w, 0.0) * max(h, 0.0)) * factor, min_side)
    return np.array([x + w / 2 - side / 2, y + h / 2 - side / 2, side], dtype=np.float64)


def crop(image: torch.Tensor, region, size: int) -> torch.Tensor:
    """Resample a square region (x0, y0, side) of a normalised (3, H, W) image to (3, size, size);
    outside the image the crop is 0 (the mean colour)."""
    x0, y0, side = (float(v) for v in region)
    roi = torch.tensor([[0.0, x0, y0, x0 + side, y0 + side]], dtype=image.dtype, device=image.device)
    return roi_align(image[None], roi, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)[0]


def crop_frame(frame: np.ndarray, region, size: int, device: str | torch.device = "cpu",
               mean=IMAGENET[0], std=IMAGENET[1]) -> torch.Tensor:
    """``crop(to_tensor(frame), region, size)`` that converts only the pixels the crop reads (a
    2-pixel margin around the region, clipped to the image), not the whole frame."""
    H, W = frame.shape[:2]
    x0, y0, side = (float(v) for v in region)
    xa, ya = min(max(int(math.floor(x0)) - 2, 0), W - 1), min(max(int(math.floor(y0)) - 2, 0), H - 1)
    xb, yb = max(min(int(math.ceil(x0 + side)) + 2, W), xa + 1), max(min(int(math.ceil(y0 + side)) + 2, H), ya + 1)
    # The slice ends at the image's borders or 2 pixels beyond every sample, so roi_align reads
    # the same pixels (and the same zeros outside the image) as on the whole frame.
    return crop(to_tensor(frame[ya:yb, xa:xb], mean, std).to(device), (x0 - xa, y0 - ya, side), size)


def to_crop(box, region) -> np.ndarray:
    """x,y,w,h frame box -> (cx, cy, w, h) in units of the crop side."""
    x, y, w, h = (float(v) for v in box)
    x0, y0, side = region
    return np.array([(x + w / 2 - x0) / side, (y + h / 2 - y0) / side, w / side, h / side])


def from_crop(cxcywh, region) -> np.ndarray:
    """(cx, cy, w, h) in crop units -> x,y,w,h frame box."""
    cx, cy, w, h = (float(v) for v in cxcywh)
    x0, y0, side = region
    return np.array([x0 + (cx - w / 2) * side, y0 + (cy - h / 2) * side, w * side, h * side])


class BoxEmbed(nn.Module):
    """Where a support's target was, as (cx, cy, w, h) in units of the current search crop, and
    how old the support is -> a D-vector. Two parts: the search crop's own position embedding read
    (bilinearly) at the box centre, times a learned per-channel scale (starting at 1), so that a
    target token speaks the search tokens' language of position from the first step; and a small
    MLP of sinusoidal features of the four numbers and of log(1 + age in frames), starting at 0."""

    def __init__(self, dim: int, frequencies: int = 8, hidden: int = 64):
        super().__init__()
        self.register_buffer("freqs", (2.0 ** torch.arange(frequencies)) * math.pi, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(8 * frequencies + 5, hidden), nn.GELU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.pos_scale = nn.Parameter(torch.ones(dim))

    def forward(self, boxes: torch.Tensor, pos_map: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """boxes (B, K, 4) cx, cy, w, h in crop units (may lie outside [0, 1]); pos_map (D, h, w)
        the search crop's position embedding; offsets (B, K) tau - t (0 when None). Returns (B, K, D)."""
        B, K, _ = boxes.shape
        x = boxes.float().clamp(-1.0, 2.0)
        age = torch.zeros(B, K, 1, device=boxes.device) if offsets is None else \
            torch.log1p(offsets.float().abs()).view(B, K, 1)
        angles = x[..., None] * self.freqs  # B, K, 4, F
        feats = torch.cat([x, age, angles.sin().flatten(2), angles.cos().flatten(2)], dim=-1)
        grid = (boxes[..., :2].float() * 2 - 1).clamp(-1.5, 1.5).view(1, B * K, 1, 2)  # align_corners=False
        pos = F.grid_sample(pos_map[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        pos = pos[0, :, :, 0].t().view(B, K, -1)  # B, K, D
        return (self.mlp(feats) + pos * self.pos_scale).to(boxes.dtype)


def centre_pool(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Mean of the central half (in each direction) of every support's token grid: (B, K, n, D)
    -> (B, K, D). A target support crop is 2x the target, so that is the target itself."""
    B, K, n, D = tokens.shape
    h, w = grid
    y0, x0 = h // 4, w // 4
    y1, x1 = max(h - h // 4, y0 + 1), max(w - w // 4, x0 + 1)
    return tokens.view(B, K, h, w, D)[:, :, y0:y1, x0:x1].mean(dim=(2, 3))


class SupportPrompts(NamedTuple):
    """What target supports give the joint pass: the backbone's prompts and a map (B, n, D) added to
    the search tokens before the blocks (``STPNTracker.support_map``)."""

    prompts: object
    search_map: torch.Tensor


def support_heat(boxes: torch.Tensor, h: int, w: int, spread: float = 0.25) -> torch.Tensor:
    """Gaussian bumps (B, K, h*w) at the supports' box centres on an h x w search grid: boxes (B, K, 4)
    cx, cy, w, h in crop units; sigma = ``spread`` x sqrt(w h) of the box, in cells, >= 0.5."""
    cx = boxes[..., 0:1] * w - 0.5  # cell i's centre is at (i + 0.5) / w
    cy = boxes[..., 1:2] * h - 0.5
    sigma = (spread * torch.sqrt((boxes[..., 2:3] * w).clamp(min=0) * (boxes[..., 3:4] * h).clamp(min=0))).clamp(min=0.5)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=boxes.dtype, device=boxes.device),
                            torch.arange(w, dtype=boxes.dtype, device=boxes.device), indexing="ij")
    d2 = (xs.reshape(1, 1, -1) - cx) ** 2 + (ys.reshape(1, 1, -1) - cy) ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))


class CenterHead(nn.Module):
    """Three small conv towers over the search map: centre heat map (logits), box size (fraction
    of the crop) and offset of the centre inside its cell."""

    def __init__(self, dim: int, channels: int = 64, layers: int = 2):
        super().__init__()

        def tower(out: int) -> nn.Sequential:
            mods, c = [], dim
            for _ in range(layers):
                mods += [nn.Conv2d(c, channels, 3, padding=1), nn.GroupNorm(min(8, channels), channels), nn.ReLU(inplace=True)]
                c = channels
            return nn.Sequential(*mods, nn.Conv2d(c, out, 1))

        self.score, self.size, self.offset = tower(1), tower(2), tower(2)
        nn.init.constant_(self.score[-1].bias, -2.19)  # prior 0.1 (CenterNet)

    def forward(self, x: torch.Tensor) -> dict:
        return {"score": self.score(x), "size": self.size(x).sigmoid(), "offset": self.offset(x).sigmoid()}


def decode(out: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Best cell per sample -> boxes (B, 4) as (cx, cy, w, h) in crop units and scores (B,)."""
    score = out["score"]
    B, _, h, w = score.shape
    flat = score.flatten(1)
    best, idx = flat.max(dim=1)
    iy, ix = idx // w, idx % w
    b = torch.arange(B, device=score.device)
    off, size = out["offset"][b, :, iy, ix], out["size"][b, :, iy, ix]
    boxes = torch.stack([(ix + off[:, 0]) / w, (iy + off[:, 1]) / h, size[:, 0], size[:, 1]], dim=1)
    return boxes, best.sigmoid()


class SupportCrops:
    """The support crop of a tracker with ``supports``, ``template_size`` / ``search_size`` and
    ``template_factor`` / ``search_factor`` (``STPNTracker`` and the exported ``OnnxTracker``)."""

    @property
    def support_size(self) -> int:
        """Side of a support crop in pixels."""
        return self.template_size if self.supports == "target" else self.search_size

    @property
    def support_factor(self) -> float:
        """Side of a support crop / sqrt(w h) of the target's box in that frame."""
        return self.template_factor if self.supports == "target" else self.search_factor


class STPNTracker(SupportCrops, nn.Module):
    """One-stream prompted ViT tracker.

    Args:
        backbone: a timm ViT (``vit_tiny_patch16_224``, ``vit_base_patch16_224``, ...).
        prompting: False builds the baseline (no predictor, no support frames).
        template_size / search_size: crop sides in pixels (multiples of the patch size).
        template_factor / search_factor: crop side / sqrt(w h) of the target.
        supports: ``target`` (crops of past frames centred on the target, at template scale and
            size) or ``search`` (past search crops, the earlier design).
        support_box: with target supports, add each support box's embedding in the current
            search crop's coordinates to its tokens (``BoxEmbed``).
        prompt_gate: scale the search tokens by their similarity to the prompts' mean before the
            head (ODTrack / AQATrack's temporal-token correlation).
        confidence: the target memory's gate at test time (``stpn.tracking.tracker.start`` reads it
            unless given another): a frame enters only when the heat-map peak is above it.
        support_map: with ``support_box``, also add to the search tokens, before the blocks, each
            support's target token (projected) spread as a Gaussian bump around its box centre in
            the current search crop (HIPTrack / ARTrack: past positions registered in the search
            region), so that where the target was reaches the search tokens directly.
        mean / std: the crops' normalisation (default: the backbone's, from timm's pretrained config).
        Other arguments go to ``stpn.STPN``.
    """

    SUPPORTS = ("target", "search")

    def __init__(self, backbone: str = "vit_tiny_patch16_224", prompting: bool = True, predictor: str = "attention",
                 num_prompts: int = 5, prompt_depth: str = "shallow", pretrained: bool = False, support_grad: bool = False,
                 template_size: int = 128, search_size: int = 256, template_factor: float = 2.0,
                 search_factor: float = 4.0, head_channels: int = 64,
                 backbone_kwargs: dict | None = None, predictor_kwargs: dict | None = None, mean=None, std=None,
                 supports: str = "target", support_box: bool = True, prompt_gate: bool = False,
                 support_map: bool = True, confidence: float = 0.5):
        super().__init__()
        if supports not in self.SUPPORTS:
            raise ValueError(f"supports must be one of {self.SUPPORTS}, got {supports!r}")
        self.stpn = STPN(backbone, predictor, num_prompts, prompt_depth, pretrained=pretrained, prompting=prompting,
                         support_grad=support_grad, backbone_kwargs=backbone_kwargs, predictor_kwargs=predictor_kwargs)
        vit = self.stpn.backbone
        if not isinstance(vit, PromptedViT):
            raise ValueError(f"the tracker needs a timm ViT backbone (one stream of template and search tokens), "
                             f"got {backbone!r}")
        p = vit.patch_size[0]
        for name, s in (("template_size", template_size), ("search_size", search_size)):
            if s % p:
                raise ValueError(f"{name} must be a multiple of the patch size {p}, got {s}")
        self.template_size, self.search_size = template_size, search_size
        self.template_factor, self.search_factor = template_factor, search_factor
        self.mean, self.std = normalization(backbone, mean, std)  # of the crops; the backbone's own by default
        self.head = CenterHead(vit.embed_dim, head_channels)
        if not 0 <= confidence < 1:
            raise ValueError(f"confidence must be in [0, 1), got {confidence}")
        self.supports, self.confidence = supports, confidence
        self.support_box = bool(prompting and supports == "target" and support_box and self.stpn.reads_support)
        self.box_embed = (nn.ModuleDict({str(s): BoxEmbed(self.stpn.backbone.dims[s]) for s in self.stpn.support_stages})
                          if self.support_box else None)
        self.prompt_gate = bool(prompting and prompt_gate)
        self.support_map = bool(self.support_box and support_map)
        self.map_proj = nn.Linear(vit.embed_dim, vit.embed_dim) if self.support_map else None
        if self.map_proj is not None:  # starts as the tracker without the map
            nn.init.zeros_(self.map_proj.weight)
            nn.init.zeros_(self.map_proj.bias)

    @property
    def prompting(self) -> bool:
        return self.stpn.prompting

    def search_position_map(self) -> torch.Tensor:
        """The search crop's position embedding as a (D, h, w) map (the one ``embed`` adds)."""
        vit = self.stpn.backbone
        p = vit.patch_size[0]
        h = w = self.search_size // p
        zeros = torch.zeros(1, h, w, vit.embed_dim, device=self.head.score[-1].weight.device)
        pos = position_embed(vit.body, zeros)[:, vit.num_prefix_tokens:]
        return pos[0].t().reshape(-1, h, w)

    def embed_template(self, template: torch.Tensor) -> torch.Tensor:
        """Template crops (B, 3, t, t) -> tokens (B, prefix + n_t, D), computed once per video."""
        return self.stpn.backbone.embed(template)

    def support_prompts(self, tokens: dict, grids: dict, boxes: torch.Tensor | None = None,
                        offsets: torch.Tensor | None = None):
        """Prompts from embedded supports (``stpn.encode_support``'s tokens and grids); ``boxes``
        (B, K, 4): each support's target box as (cx, cy, w, h) in the current search crop's units,
        needed with ``support_box``.

        With ``support_box`` every support also gives one *target token* per stage, appended to
        that stage's prompts: the mean of its central tokens (the target's appearance then) plus
        the embedding of its box and age (``BoxEmbed``: where it was in this search crop)."""
        prompts = self.stpn.predict_prompts(tokens, grids, offsets)
        if not self.support_box:
            return prompts
        if boxes is None:
            raise ValueError("this tracker embeds where the target was: give the support boxes (B, K, 4) "
                             "as cx, cy, w, h in the current search crop's units")
        B, K = next(iter(tokens.values())).shape[:2]
        if tuple(boxes.shape) != (B, K, 4):
            raise ValueError(f"support boxes must have shape (B={B}, K={K}, 4), got {tuple(boxes.shape)}")
        if not torch.isfinite(boxes).all():
            raise ValueError("support boxes must be finite")
        pos = self.search_position_map()
        target = {s: centre_pool(t, grids[s]) + self.box_embed[str(s)](boxes, pos, offsets) for s, t in tokens.items()}
        if self.stpn.prompt_depth == "shallow":
            prompts = torch.cat([prompts, target[self.stpn.support_stages[0]]], dim=1)
        elif self.stpn.prompt_depth == "deep":
            prompts = [torch.cat([p, target[s]], dim=1) for s, p in enumerate(prompts)]
        else:
            prompts = [[torch.cat([p, target[s]], dim=1) for p in ps] for s, ps in enumerate(prompts)]
        if not self.support_map:
            return prompts
        h, w = pos.shape[-2:]
        heat = support_heat(boxes.float(), h, w)  # B, K, h*w
        value = self.map_proj(target[self.stpn.support_stages[-1]])  # B, K, D
        return SupportPrompts(prompts, torch.einsum("bkn,bkd->bnd", heat.to(value.dtype), value))

    def prompts(self, support: torch.Tensor, offsets: torch.Tensor | None = None, boxes: torch.Tensor | None = None):
        """Prompts from support crops (B, K, 3, c, c) (c = ``support_size``) and, with
        ``support_box``, their boxes (B, K, 4) in the current search crop's units."""
        tokens, grids = self.stpn.encode_support(support)
        return self.support_prompts(tokens, grids, boxes, offsets)

    def head_forward(self, template_tokens: torch.Tensor, search: torch.Tensor, prompts=None) -> dict:
        """Joint prompted pass of template tokens and search crops (B, 3, s, s) -> head outputs."""
        vit = self.stpn.backbone
        B, _, H, W = search.shape
        s = vit.embed(search)[:, vit.num_prefix_tokens:]
        if isinstance(prompts, SupportPrompts):
            prompts, search_map = prompts
            s = s + search_map
        out = vit.forward_tokens(torch.cat([template_tokens, s], dim=1), prompts)[-1]
        h, w = H // vit.patch_size[0], W // vit.patch_size[1]
        x = out[:, -s.shape[1]:]
        if self.prompt_gate and prompts is not None:  # each search token scaled by its likeness to the prompts
            last = prompts if isinstance(prompts, torch.Tensor) else prompts[-1]
            last = last if isinstance(last, torch.Tensor) else last[-1]
            token = F.normalize(last.mean(1), dim=-1)  # B, D
            x = x * (1 + torch.tanh((F.normalize(x, dim=-1) * token[:, None]).sum(-1, keepdim=True)))
        return self.head(x.transpose(1, 2).reshape(B, -1, h, w))

    def compile(self, **kwargs) -> "STPNTracker":
        """``torch.compile`` the parts the tracking loop calls: the joint pass with the head
        (``head_forward``) and the backbone (support passes). Each compiles to one graph (no
        graph breaks); kwargs go to ``torch.compile``."""
        self.head_forward = torch.compile(self.head_forward, **kwargs)
        self.stpn.backbone.compile(**kwargs)
        return self

    def forward(self, template: torch.Tensor, search: torch.Tensor, support: torch.Tensor | None = None,
                offsets: torch.Tensor | None = None, boxes: torch.Tensor | None = None) -> dict:
        """template (B, 3, t, t), search (B, 3, s, s), support (B, K, 3, c, c) past support crops,
        offsets (B, K) = tau - t, boxes (B, K, 4) the supports' target boxes in the search crop's
        units. Returns score logits (B, 1, h, w), size and offset (B, 2, h, w)."""
        prompts = None
        if self.prompting:
            if support is None:
                raise ValueError(f"a prompted tracker needs support crops of shape (B, K, 3, {self.support_size}, "
                                 f"{self.support_size})")
            prompts = self.prompts(support, offsets, boxes)
        return self.head_forward(self.embed_template(template), search, prompts)


# losses ----------------------------------------------------------------------------------------
def heatmap_targets(boxes: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian centre heat maps (B, 1, h, w) with 1 at the centre cell, and that cell (B, 2) as
    (ix, iy). ``boxes`` (B, 4) cx, cy, w, h in crop units. sigma = size in cells / 6, >= 0.5."""
    cx, cy = boxes[:, 0] * w, boxes[:, 1] * h
    ix = cx.floor().clamp(0, w - 1)
    iy = cy.floor().clamp(0, h - 1)
    sigma = (torch.sqrt((boxes[:, 2] * w) * (boxes[:, 3] * h)) / 6).clamp(min=0.5)
    xs = torch.arange(w, device=boxes.device, dtype=boxes.dtype)
    ys = torch.arange(h, device=boxes.device, dtype=boxes.dtype)
    gx = torch.exp(-((xs[None] - ix[:, None]) ** 2) / (2 * sigma[:, None] ** 2))
    gy = torch.exp(-((ys[None] - iy[:, None]) ** 2) / (2 * sigma[:, None] ** 2))
    return (gy[:, :, None] * gx[:, None, :])[:, None], torch.stack([ix, iy], dim=1).long()


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), per positive cell."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - target) ** 4 * (1 - pos)).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1)


def tracking_loss(out: dict, boxes: torch.Tensor, weights=(1.0, 5.0, 2.0)) -> dict:
    """Focal loss on the heat map; L1 and GIoU on the box read at the true centre cell.
    ``boxes`` (B, 4) cx, cy, w, h in crop units."""
    score = out["score"].float()
    B, _, h, w = score.shape
    target, cell = heatmap_targets(boxes.float(), h, w)
    b = torch.arange(B, device=score.device)
    off = out["offset"].float()[b, :, cell[:, 1], cell[:, 0]]
    size = out["size"].float()[b, :, cell[:, 1], cell[:, 0]]
    pred = torch.stack([(cell[:, 0] + off[:, 0]) / w, (cell[:, 1] + off[:, 1]) / h, size[:, 0], size[:, 1]], 1)

    def xyxy(c):
        return torch.cat([c[:, :2] - c[:, 2:] / 2, c[:, :2] + c[:, 2:] / 2], dim=1)

    return {"focal": weights[0] * focal_loss(score, target),
            "l1": weights[1] * F.l1_loss(pred, boxes.float()),
            "giou": weights[2] * generalized_box_iou_loss(xyxy(pred), xyxy(boxes.float()), reduction="mean")}
