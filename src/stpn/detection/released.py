"""Whole-detector checkpoints in mmdetection's layout: the released STPN model
(``stpn_swint_adam_9x``: ``{'meta', 'state_dict'}``, keys ``detector.backbone.*``,
``detector.neck.*``, ``detector.rpn_head.*``, ``detector.roi_head.bbox_head.*``,
``prompt_predictor.*``) and plain mmdetection detectors such as the COCO Mask R-CNN Swin-T
the released training starts from (no ``detector.`` prefix; original Swin layout).

Key map (ours <- theirs):

- ``backbone.stpn.backbone.*`` <- ``backbone.*`` (``weights.detection_swin_to_ours``)
- ``backbone.stpn.predictor.*`` <- ``prompt_predictor.*`` (``AttentionPredictor.convert_released``)
- ``backbone.fpn.inner_blocks.i.0`` / ``layer_blocks.i.0`` <- ``neck.lateral_convs.i.conv`` / ``fpn_convs.i.conv``
- ``rpn.head.conv.0.0`` / ``cls_logits`` / ``bbox_pred`` <- ``rpn_head.rpn_conv`` / ``rpn_cls`` / ``rpn_reg``
- ``roi_heads.box_head.fc6`` / ``fc7`` <- ``roi_head.bbox_head.shared_fcs.0`` / ``.1``
- ``roi_heads.box_predictor.cls_score`` (background FIRST) <- ``fc_cls`` (background LAST)
- ``roi_heads.box_predictor.bbox_pred`` (4 (C+1) rows, background first) <- ``fc_reg``
  (class-specific, 4 C rows, no background): the background rows are zero (never used).
- a Mask R-CNN's mask branch (the segmenter): ``roi_heads.mask_head.i.0`` <-
  ``roi_head.mask_head.convs.i.conv``, ``roi_heads.mask_predictor.conv5_mask`` <- ``upsample``,
  ``roi_heads.mask_predictor.mask_fcn_logits`` (C+1 masks, background first) <- ``conv_logits``
  (C masks): the background mask is zero (never used).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..core.predictors import AttentionPredictor
from ..core.weights import WeightsError, detection_swin_to_ours, ours_to_mmdet_swin, read_state_dict

_RENAMES = [  # (ours, theirs) prefixes below the backbone; {} is a level index
    ("backbone.fpn.inner_blocks.{}.0.", "neck.lateral_convs.{}.conv."),
    ("backbone.fpn.layer_blocks.{}.0.", "neck.fpn_convs.{}.conv."),
    ("rpn.head.conv.0.0.", "rpn_head.rpn_conv."),
    ("rpn.head.cls_logits.", "rpn_head.rpn_cls."),
    ("rpn.head.bbox_pred.", "rpn_head.rpn_reg."),
    ("roi_heads.box_head.fc6.", "roi_head.bbox_head.shared_fcs.0."),
    ("roi_heads.box_head.fc7.", "roi_head.bbox_head.shared_fcs.1."),
    ("roi_heads.box_predictor.cls_score.", "roi_head.bbox_head.fc_cls."),
    ("roi_heads.box_predictor.bbox_pred.", "roi_head.bbox_head.fc_reg."),
    ("roi_heads.mask_head.{}.0.", "roi_head.mask_head.convs.{}.conv."),
    ("roi_heads.mask_predictor.conv5_mask.", "roi_head.mask_head.upsample."),
    ("roi_heads.mask_predictor.mask_fcn_logits.", "roi_head.mask_head.conv_logits."),
]


def _rename(key: str, ours_to_theirs: bool) -> str | None:
    """The other layout's name of ``key``, or None when no rule applies."""
    for ours, theirs in _RENAMES:
        src, dst = (ours, theirs) if ours_to_theirs else (theirs, ours)
        m = re.match(re.escape(src).replace(re.escape("{}"), r"(\d+)"), key)
        if m:
            return dst.format(*m.groups()) + key[m.end():]
    return None


def is_mmdet_detector(sd: dict) -> bool:
    """Whether a state dict is a whole mmdetection detector (a neck or an RPN head beside the backbone)."""
    return any(re.match(r"(detector\.)?(neck|rpn_head)\.", k) for k in sd)


def released_to_ours(sd: dict, det: nn.Module) -> tuple[dict, list[str]]:
    """An mmdetection detector state dict -> (our detector's state dict entries, keys not mapped)."""
    prefix = "detector." if any(k.startswith("detector.") for k in sd) else ""
    out, unmapped, backbone = {}, [], {}
    for key, value in sd.items():
        if key.startswith(prefix + "backbone."):
            backbone[key[len(prefix + "backbone."):]] = value
        elif key.startswith("prompt_predictor."):
            continue
        else:
            name = _rename(key[len(prefix):], ours_to_theirs=False) if key.startswith(prefix) else None
            if name is None:
                unmapped.append(key)
                continue
            if name.startswith("roi_heads.box_predictor.cls_score."):
                value = torch.cat([value[-1:], value[:-1]])  # background last -> first
            elif name.startswith("roi_heads.box_predictor.bbox_pred."):
                value = torch.cat([value.new_zeros(4, *value.shape[1:]), value])  # + background rows
            elif name.startswith("roi_heads.mask_predictor.mask_fcn_logits."):
                value = torch.cat([value.new_zeros(1, *value.shape[1:]), value])  # + a background mask
            out[name] = value
    if backbone:
        dims = list(det.stpn.backbone.dims)
        out.update({f"backbone.stpn.backbone.{k}": v for k, v in detection_swin_to_ours(backbone, dims).items()})
    predictor = {k[len("prompt_predictor."):]: v for k, v in sd.items() if k.startswith("prompt_predictor.")}
    if predictor:
        out.update({f"backbone.stpn.predictor.{k}": v
                    for k, v in AttentionPredictor.convert_released(predictor).items()})
    return out, unmapped


def ours_to_released(det: nn.Module) -> dict:
    """Our detector's weights in the released STPN layout (``detector.*``, ``prompt_predictor.*``)."""
    stpn = det.stpn
    if stpn.prompting and not isinstance(stpn.predictor, AttentionPredictor):
        raise ValueError("the released layout holds one (shallow) attention predictor; this detector has "
                         f"prompt_depth={stpn.prompt_depth!r}, predictor={stpn.predictor_name!r}")
    _check_prompt_widening(det, "written in the released layout")
    out = {f"detector.backbone.{k}": v for k, v in ours_to_mmdet_swin(stpn.backbone).items()}
    released_names = {v: k for k, v in AttentionPredictor.RELEASED_KEYS.items()}
    for key, value in det.state_dict().items():
        if key.startswith("backbone.stpn.predictor."):
            name, _, leaf = key[len("backbone.stpn.predictor."):].rpartition(".")
            out[f"prompt_predictor.{released_names.get(name, name)}.{leaf}" if name else f"prompt_predictor.{leaf}"] = value
            continue
        if key.startswith("backbone.stpn."):
            continue
        name = _rename(key, ours_to_theirs=True)
        if name is None:
            raise ValueError(f"no released name for {key}")
        if name.startswith("roi_head.bbox_head.fc_cls."):
            value = torch.cat([value[1:], value[:1]])  # background first -> last
        elif name.startswith("roi_head.bbox_head.fc_reg."):
            value = value[4:]  # drop the background rows
        elif name.startswith("roi_head.mask_head.conv_logits."):
            value = value[1:]  # drop the background mask
        out[f"detector.{name}"] = value
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def _check_prompt_widening(det: nn.Module, what: str) -> None:
    """The released code widens prompts at patch merging in its own layout; prompts computed the
    other way with its weights would be silently different."""
    if det.stpn.prompting and not det.stpn.backbone.legacy_merge:
        raise WeightsError(f"a released STPN checkpoint {what} needs the released prompt widening: "
                           "build the detector with model.legacy_merge: true (as vid_swin_t_released does)")


def write_released_checkpoint(det: nn.Module, path: str | Path, meta: dict | None = None) -> Path:
    """Save ``det`` as an mmdetection checkpoint in the released STPN layout (``{'meta', 'state_dict'}``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"meta": dict(meta or {"written_by": "stpn"}), "state_dict": ours_to_released(det)}, tmp)
    tmp.replace(path)
    return path


def load_detector_checkpoint(det: nn.Module, path: str | Path, strict: bool = True,
                             state_dict: dict | None = None) -> dict:
    """Load an mmdetection detector checkpoint (the released STPN, or a detector to start from).

    Returns {'loaded', 'missing', 'unexpected', 'wrong_shape'} (key lists are ours, but
    'unexpected' lists the file's keys). ``strict``: every key of ``det`` must be loaded and every
    key of the file used, else ``WeightsError`` naming them. Not strict: tensors whose shape does
    not fit (e.g. an 81-class COCO head for 30 classes) are left out and reported; an error when
    nothing fits. ``state_dict``: the file's contents when the caller has read them already.
    """
    sd = read_state_dict(path) if state_dict is None else state_dict
    if any(k.startswith("prompt_predictor.") for k in sd):
        _check_prompt_widening(det, f"loaded from {path}")
    mapped, unmapped = released_to_ours(sd, det)
    own = det.state_dict()
    fits = {k: v for k, v in mapped.items() if k in own and own[k].shape == v.shape}
    report = {"loaded": len(fits), "missing": [k for k in own if k not in mapped],
              "unexpected": unmapped + [k for k in mapped if k not in own],
              "wrong_shape": [f"{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}"
                              for k, v in mapped.items() if k in own and own[k].shape != v.shape]}
    if not fits:
        raise WeightsError(f"{path}: no tensor fits this detector (file keys look like {', '.join(list(sd)[:3])})")
    if strict and (report["missing"] or report["unexpected"] or report["wrong_shape"]):
        raise WeightsError(
            f"{path} does not fit this detector: {len(report['missing'])} missing (e.g. {report['missing'][:3]}), "
            f"{len(report['unexpected'])} unexpected (e.g. {report['unexpected'][:3]}), "
            f"{len(report['wrong_shape'])} of another shape (e.g. {report['wrong_shape'][:2]}); check the config "
            "(backbone, num_classes, prompting, predictor) against the checkpoint")
    det.load_state_dict(fits, strict=False)
    print(f"loaded {len(fits)} tensors from {path}; {len(report['missing'])} missing, "
          f"{len(report['unexpected'])} unexpected, {len(report['wrong_shape'])} of another shape")
    return report
