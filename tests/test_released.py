"""The released STPN detector's checkpoint layout and mmdetection 2.19 inference conventions:
hand-worked cases for each convention, and a checkpoint written in the released layout that
loads back into identical detections."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.ops import roi_align

from conftest import assert_same_detections
from stpn.core.weights import WeightsError
from stpn.data.synth import SynthConfig, synth_video
from stpn.detection.build import load_detector
from stpn.detection.conventions import (
    MMDetAnchorGenerator,
    MMDetBoxCoder,
    MMDetRoIAlign,
    MMDetTransform,
    mmdet_resized_size,
    mmdet_roi_levels,
)
from stpn.detection.inference import predict_video
from stpn.detection.released import load_detector_checkpoint, released_to_ours, write_released_checkpoint
from stpn.detection.task import DetectionTask
from stpn.engine.config import load_config

TINY_RELEASED = [  # the released config with a tiny Swin and heads, at small test sizes
    "model.backbone_kwargs={embed_dim: 16, depths: [1, 1, 2, 1], num_heads: [1, 1, 2, 2], window_size: 4}",
    "model.predictor_kwargs={num_groups: 4}", "detection.num_classes=3", "detection.fpn_channels=16",
    "detection.box_head_dim=32", "detection.min_size=[64]", "detection.max_size=100", "detection.test_min_size=64",
    "detection.test_max_size=100",
]


def tiny_released_detector(seed: int):
    torch.manual_seed(seed)
    det = DetectionTask().build_model(load_config("vid_swin_t_released", TINY_RELEASED)).eval()
    with torch.no_grad():  # away from the init, so that every part shapes the detections
        for p in det.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return det


# --- anchors ----------------------------------------------------------------------------------
def test_base_anchors_are_not_rounded_hand_worked():
    r = math.sqrt(2) * 16  # 22.627417: stride 4, scale 8, ratios 0.5 / 1 / 2 (h / w)
    expected = torch.tensor([[-r, -r / 2, r, r / 2], [-16, -16, 16, 16], [-r / 2, -r, r / 2, r]])
    ours = MMDetAnchorGenerator(((32,),), ((0.5, 1.0, 2.0),)).generate_anchors([32], [0.5, 1.0, 2.0])
    assert torch.allclose(ours, expected, atol=1e-5)
    rounded = AnchorGenerator(((32,),), ((0.5, 1.0, 2.0),)).generate_anchors([32], [0.5, 1.0, 2.0])
    assert rounded[0].tolist() == [-23, -11, 23, 11]  # torchvision's, which the released model never saw


def test_anchor_and_rpn_output_order_is_y_x_anchor_as_mmdetection():
    from torchvision.models.detection.image_list import ImageList
    gen = MMDetAnchorGenerator(((32,),), ((0.5, 1.0, 2.0),))
    H, W, A = 2, 3, 3
    images = ImageList(torch.zeros(1, 3, 4 * H, 4 * W), [(4 * H, 4 * W)])
    anchors = gen(images, [torch.zeros(1, 1, H, W)])[0]
    base = gen.generate_anchors([32], [0.5, 1.0, 2.0])
    for y in range(H):
        for x in range(W):
            for a in range(A):  # mmdetection's flat index (y W + x) A + a
                assert torch.allclose(anchors[(y * W + x) * A + a], base[a] + torch.tensor([4. * x, 4. * y] * 2))
    # the RPN head's outputs are read in the same order: mmdetection flattens cls (A, H, W) with
    # permute(1, 2, 0) and reg (4A, H, W) as channel a 4 + k
    cls = torch.arange(A * H * W, dtype=torch.float32).reshape(1, A, H, W)
    reg = torch.arange(4 * A * H * W, dtype=torch.float32).reshape(1, 4 * A, H, W)
    flat_cls, flat_reg = concat_box_prediction_layers([cls], [reg])
    assert torch.equal(flat_cls.flatten(), cls[0].permute(1, 2, 0).reshape(-1))
    assert torch.equal(flat_reg, reg[0].permute(1, 2, 0).reshape(-1, 4))


# --- box coding -------------------------------------------------------------------------------
def test_delta_decoded_with_stds_0_2_hand_worked():
    coder = MMDetBoxCoder((5.0, 5.0, 5.0, 5.0), math.log(1000 / 16))
    proposal = torch.tensor([[10.0, 20.0, 50.0, 100.0]])  # centre (30, 60), 40 x 80
    # deltas x stds: (0.1, -0.05, 0.2, -0.1) -> centre (34, 56), size 40 e^0.2 x 80 e^-0.1
    box = coder.decode_single(torch.tensor([[0.5, -0.25, 1.0, -0.5]]), proposal)[0]
    w, h = 40 * math.exp(0.2), 80 * math.exp(-0.1)
    assert torch.allclose(box, torch.tensor([34 - w / 2, 56 - h / 2, 34 + w / 2, 56 + h / 2]), atol=1e-4)
    assert torch.allclose(box, torch.tensor([9.5720, 19.8063, 58.4280, 92.1937]), atol=1e-3)
    # dw x std = -6 is clamped to -log(1000/16) on both sides (torchvision: from above only)
    small = coder.decode_single(torch.tensor([[0.0, 0.0, -30.0, 0.0]]), proposal)[0]
    assert small[2] - small[0] == pytest.approx(40 * 16 / 1000, rel=1e-4)
    tv = BoxCoder((5.0, 5.0, 5.0, 5.0), math.log(1000 / 16)).decode_single(torch.tensor([[0.0, 0.0, -30.0, 0.0]]), proposal)[0]
    assert tv[2] - tv[0] == pytest.approx(40 * math.exp(-6), rel=1e-4)


def test_background_last_logits_give_the_same_class_scores():
    # released fc_cls: 2 classes + background LAST; logits (1, 2, 0) -> softmax, drop the last
    released = {"detector.roi_head.bbox_head.fc_cls.weight": torch.eye(3),
                "detector.roi_head.bbox_head.fc_cls.bias": torch.zeros(3)}
    ours, _ = released_to_ours(released, det=None)
    logits = torch.tensor([1.0, 2.0, 0.0])
    scores = (ours["roi_heads.box_predictor.cls_score.weight"] @ logits).softmax(-1)[1:]  # background first
    e = math.e
    assert scores.tolist() == pytest.approx([e / (1 + e + e * e), e * e / (1 + e + e * e)], abs=1e-6)
    assert scores.tolist() == pytest.approx([0.244728, 0.665241], abs=1e-6)


# --- RoI features -----------------------------------------------------------------------------
def test_roi_levels_at_the_56_and_112_boundaries():
    sides = torch.tensor([8.0, 55.9, 56.0, 111.9, 112.0, 223.9, 224.0, 448.0, 2000.0])
    boxes = torch.stack([torch.zeros_like(sides), torch.zeros_like(sides), sides, sides], 1)
    assert mmdet_roi_levels(boxes).tolist() == [0, 0, 0, 0, 1, 1, 2, 3, 3]
    # just below 112 the +1e-6 inside the log keeps level 0, where torchvision's eps outside gives 1
    s = torch.tensor([111.99994], dtype=torch.float64)
    assert mmdet_roi_levels(torch.stack([s * 0, s * 0, s, s], 1)).tolist() == [0]
    assert torch.floor(torch.log2(s / 56) + 1e-6).tolist() == [1.0]


def test_roi_align_is_aligned_on_the_level_of_the_box():
    maps = {str(i): torch.randn(1, 2, 64 // 2 ** i, 64 // 2 ** i) for i in range(4)}
    boxes = torch.tensor([[3.3, 4.1, 40.2, 30.7], [0.0, 0.0, 150.0, 120.0], [10.0, 5.0, 250.0, 255.0]])
    out = MMDetRoIAlign()(maps, [boxes])
    for i, (box, level) in enumerate(zip(boxes, [0, 1, 2])):
        rois = torch.cat([torch.zeros(1, 1), box[None]], 1)
        ref = roi_align(maps[str(level)], rois, (7, 7), spatial_scale=1 / 4 / 2 ** level, sampling_ratio=0, aligned=True)
        assert torch.allclose(out[i], ref[0], atol=1e-6)
        unaligned = roi_align(maps[str(level)], rois, (7, 7), spatial_scale=1 / 4 / 2 ** level, sampling_ratio=0)
        assert not torch.allclose(out[i], unaligned[0], atol=1e-3)


# --- input pipeline ---------------------------------------------------------------------------
@pytest.mark.parametrize("size, resized, padded", [((720, 1280), (563, 1000), (576, 1008)),
                                                   ((375, 500), (600, 800), (608, 800)),
                                                   ((1080, 1920), (563, 1000), (576, 1008))])
def test_resize_rounds_as_mmcv_and_pads_to_16(size, resized, padded):
    assert mmdet_resized_size(*size, 600, 1000) == resized
    transform = MMDetTransform((600,), 1000).eval()
    images, _ = transform([torch.full((3, *size), 128 / 255)])
    assert images.image_sizes == [resized] and tuple(images.tensors.shape[-2:]) == padded
    # grey 128 normalised with the pixel mean/std; padding is 0 after normalisation
    expected = torch.tensor([(128 - 123.675) / 58.395, (128 - 116.28) / 57.12, (128 - 103.53) / 57.375])
    assert torch.allclose(images.tensors[0, :, 0, 0], expected, atol=1e-5)
    assert not images.tensors[0, :, resized[0]:].any() and not images.tensors[0, :, :, resized[1]:].any()


def test_resized_pixels_are_8_bit_levels_as_the_released_uint8_image():
    transform = MMDetTransform((600,), 1000).eval()
    image = torch.rand(3, 50, 70)
    x = transform.prepare(image[None], (61, 83))[0]
    levels = x * torch.tensor([58.395, 57.12, 57.375])[:, None, None] + torch.tensor([123.675, 116.28, 103.53])[:, None, None]
    assert (levels - levels.round()).abs().max() < 1e-3 and levels.min() >= -1e-3 and levels.max() <= 255 + 1e-3


# --- checkpoints ------------------------------------------------------------------------------
def test_released_layout_has_the_released_keys_and_shapes(tmp_path):
    det = tiny_released_detector(0)
    path = write_released_checkpoint(det, tmp_path / "stpn.pth")
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"meta", "state_dict"}
    sd = ckpt["state_dict"]
    prefixes = {k.split(".")[0] + "." + k.split(".")[1] if k.startswith("detector.") else k.split(".")[0] for k in sd}
    assert prefixes == {"detector.backbone", "detector.neck", "detector.rpn_head", "detector.roi_head", "prompt_predictor"}
    assert sd["detector.roi_head.bbox_head.fc_cls.weight"].shape == (4, 32)  # 3 classes + background
    assert sd["detector.roi_head.bbox_head.fc_reg.weight"].shape == (12, 32)  # class-specific, no background
    assert sd["detector.rpn_head.rpn_cls.weight"].shape == (3, 16, 1, 1)
    assert sd["detector.backbone.stages.0.blocks.0.attn.w_msa.relative_position_index"].shape == (16, 16)
    for key in ("detector.backbone.patch_embed.projection.weight", "detector.backbone.stages.2.downsample.reduction.weight",
                "detector.backbone.norm3.weight", "detector.backbone.stages.0.blocks.0.ffn.layers.0.0.weight",
                "detector.neck.lateral_convs.3.conv.weight", "detector.neck.fpn_convs.0.conv.bias",
                "detector.roi_head.bbox_head.shared_fcs.1.weight", "prompt_predictor.fc_embed.weight",
                "prompt_predictor.ref_fc_embed.bias", "prompt_predictor.ref_fc.weight", "prompt_predictor.query"):
        assert key in sd, key


def test_released_layout_round_trips_to_identical_detections(tmp_path):
    source, target = tiny_released_detector(0), tiny_released_detector(1)
    path = write_released_checkpoint(source, tmp_path / "stpn_swint_adam_9x.pth")
    report = load_detector_checkpoint(target, path, strict=True)
    assert report["missing"] == [] and report["unexpected"] == [] and report["wrong_shape"] == []
    video = synth_video(SynthConfig(videos=1, frames=5, width=90, height=70, classes=3, seed=3), 0)[0]
    a = list(predict_video(source, video, "global", 14))
    b = list(predict_video(target, video, "global", 14))
    assert sum(len(p["scores"]) for p in a) > 0
    for p, q in zip(a, b):
        for key in ("boxes", "labels", "scores"):
            assert np.array_equal(p[key], q[key])
    # the command-line path: the .pth with the packaged config (and the tiny overrides)
    det, cfg = load_detector(path, "vid_swin_t_released", TINY_RELEASED)
    assert cfg.detection.conventions == "mmdet" and cfg.model.legacy_merge
    c = list(predict_video(det, video, "global", 14))
    assert all(np.array_equal(p["boxes"], q["boxes"]) for p, q in zip(a, c))


def test_released_merge_and_prompt_widening_equal_mmdetection_computation(tmp_path):
    # mmdetection merges with nn.Unfold (channel c 4 + k) and the released code widens a prompt
    # by cat([p, p, p, p]) read in that layout; computed here on the written mmdetection weights
    det = tiny_released_detector(0)
    sd = torch.load(write_released_checkpoint(det, tmp_path / "m.pth"), weights_only=True)["state_dict"]
    norm_w, norm_b = sd["detector.backbone.stages.0.downsample.norm.weight"], sd["detector.backbone.stages.0.downsample.norm.bias"]
    reduction = sd["detector.backbone.stages.0.downsample.reduction.weight"]
    x = torch.randn(1, 6, 10, 16)  # B, H, W, C
    unfolded = F.unfold(x.permute(0, 3, 1, 2), kernel_size=2, stride=2).transpose(1, 2)  # B, L, 4C
    mmdet = F.layer_norm(unfolded, (64,), norm_w, norm_b) @ reduction.T
    p = torch.randn(1, 5, 16)
    mmdet_p = F.layer_norm(torch.cat([p, p, p, p], -1), (64,), norm_w, norm_b) @ reduction.T
    from stpn.core.swin import widen_prompts
    merge = det.stpn.backbone.body.layers[1].downsample
    with torch.no_grad():
        assert torch.allclose(merge(x).reshape(1, -1, 32), mmdet, atol=1e-5)
        assert torch.allclose(merge.reduction(merge.norm(widen_prompts(p, legacy=True))), mmdet_p, atol=1e-5)


def _original_swin_layout(backbone) -> dict:
    """A PromptedSwin written as the original Swin detection code saves it (Swin-Transformer-
    Object-Detection): merge at the end of stage i (same channel order as timm), norm0..norm3."""
    out, n = {}, len(backbone.dims)
    for k, v in backbone.state_dict().items():
        if k.startswith("stage_norms."):
            k = "norm" + k[len("stage_norms."):]
        elif k.startswith("body.norm."):
            k = f"norm{n - 1}." + k[len("body.norm."):]
        else:
            k = k[len("body."):]
            if ".downsample." in k:
                stage = int(k.split(".")[1])
                k = f"layers.{stage - 1}.downsample." + k.split(".downsample.")[1]
        out[f"backbone.{k}"] = v
    return out


def test_the_coco_mask_rcnn_start_loads_backbone_fpn_rpn_and_box_head_where_shapes_fit(tmp_path):
    source = tiny_released_detector(0)
    sd = _original_swin_layout(source.stpn.backbone)
    sd["backbone.layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(16, 16, dtype=torch.long)
    for k, v in source.state_dict().items():
        name = {"backbone.fpn.inner_blocks.": "neck.lateral_convs.", "backbone.fpn.layer_blocks.": "neck.fpn_convs.",
                "rpn.head.conv.0.0.": "rpn_head.rpn_conv.", "rpn.head.cls_logits.": "rpn_head.rpn_cls.",
                "rpn.head.bbox_pred.": "rpn_head.rpn_reg.", "roi_heads.box_head.fc6.": "roi_head.bbox_head.shared_fcs.0.",
                "roi_heads.box_head.fc7.": "roi_head.bbox_head.shared_fcs.1."}
        for ours, theirs in name.items():
            if k.startswith(ours):
                rest = k[len(ours):]
                if theirs.startswith("neck."):
                    level, rest = rest.split(".0.", 1)
                    sd[f"{theirs}{level}.conv.{rest}"] = v
                else:
                    sd[theirs + rest] = v
    sd["roi_head.bbox_head.fc_cls.weight"] = torch.randn(81, 32)  # COCO: 80 classes + background
    sd["roi_head.bbox_head.fc_reg.weight"] = torch.randn(320, 32)
    sd["roi_head.mask_head.conv_logits.weight"] = torch.randn(80, 16, 1, 1)
    torch.save({"meta": {}, "state_dict": sd}, tmp_path / "mask_rcnn_swin_tiny_patch4_window7.pth")
    torch.manual_seed(5)
    cfg = load_config("vid_swin_t_released", TINY_RELEASED + [f"model.weights={tmp_path / 'mask_rcnn_swin_tiny_patch4_window7.pth'}"])
    det = DetectionTask().build_model(cfg).eval()
    own, src = det.state_dict(), source.state_dict()
    for k in own:
        if k.startswith(("backbone.stpn.backbone.", "backbone.fpn.", "rpn.", "roi_heads.box_head.")):
            assert torch.equal(own[k], src[k]), k
        else:  # the prompt predictor (not in a COCO detector) and the 30-class outputs
            assert k.startswith(("backbone.stpn.predictor.", "roi_heads.box_predictor.")), k
            assert not torch.equal(own[k], src[k]), k
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(det.stpn.backbone(images), source.stpn.backbone(images)):
            assert torch.equal(a, b)


def test_a_checkpoint_for_another_detector_fails_naming_the_keys(tmp_path):
    path = write_released_checkpoint(tiny_released_detector(0), tmp_path / "stpn.pth")
    other = DetectionTask().build_model(load_config("vid_swin_t_released", TINY_RELEASED + ["detection.num_classes=5"]))
    with pytest.raises(WeightsError, match=r"0 missing.*4 of another shape.*cls_score.weight: file \(4, 32\), model \(6, 32\)"):
        load_detector_checkpoint(other, path)
    with pytest.raises(ValueError, match="carries no stpn config: pass one"):
        load_detector(path)
    plain_merge = DetectionTask().build_model(load_config("vid_swin_t_released", TINY_RELEASED + ["model.legacy_merge=false"]))
    with pytest.raises(WeightsError, match="needs the released prompt widening: build the detector with model.legacy_merge: true"):
        load_detector_checkpoint(plain_merge, path)  # its prompts would be silently different
    with pytest.raises(WeightsError, match="needs the released prompt widening"):
        write_released_checkpoint(plain_merge, tmp_path / "other_widening.pth")
    with pytest.raises(WeightsError, match="no tensor fits this detector"):
        torch.save({"state_dict": {"something.else": torch.zeros(2)}}, tmp_path / "other.pth")
        load_detector_checkpoint(other, tmp_path / "other.pth")


# --- RPN and R-CNN against mmdetection's test-time procedure, stated here from its code ---------
def mmdet_decode(anchors, deltas, stds, img_shape):
    """DeltaXYWHBBoxCoder.decode: d * std, dw/dh clamped to +-|log(16/1000)|, clip to [0, W] x [0, H]."""
    d = deltas * torch.tensor(stds)
    limit = abs(math.log(16 / 1000))
    dw, dh = d[:, 2].clamp(-limit, limit), d[:, 3].clamp(-limit, limit)
    px, py = (anchors[:, 0] + anchors[:, 2]) * 0.5, (anchors[:, 1] + anchors[:, 3]) * 0.5
    pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    gx, gy, gw, gh = px + pw * d[:, 0], py + ph * d[:, 1], pw * dw.exp(), ph * dh.exp()
    boxes = torch.stack([gx - gw * 0.5, gy - gh * 0.5, gx + gw * 0.5, gy + gh * 0.5], 1)
    H, W = img_shape
    return torch.stack([boxes[:, 0].clamp(0, W), boxes[:, 1].clamp(0, H), boxes[:, 2].clamp(0, W), boxes[:, 3].clamp(0, H)], 1)


def mmdet_rpn_proposals(sd, features, img_shape, nms_pre, max_per_img, strides=(4, 8, 16, 32, 64), scale=8):
    """RPNHead._get_bboxes_single + _bbox_post_process (mmdetection 2.19) with the released keys."""
    from torchvision.ops import batched_nms
    w = lambda name: sd[f"detector.rpn_head.{name}"]  # noqa: E731
    all_boxes, all_scores, all_levels = [], [], []
    for level, (fmap, stride) in enumerate(zip(features, strides)):
        x = F.relu(F.conv2d(fmap, w("rpn_conv.weight"), w("rpn_conv.bias"), padding=1))
        cls = F.conv2d(x, w("rpn_cls.weight"), w("rpn_cls.bias"))[0]
        reg = F.conv2d(x, w("rpn_reg.weight"), w("rpn_reg.bias"))[0]
        A, H, W = cls.shape
        scores = cls.permute(1, 2, 0).reshape(-1).sigmoid()
        deltas = reg.permute(1, 2, 0).reshape(-1, 4)
        h_ratios = torch.tensor([0.5, 1.0, 2.0]).sqrt()
        ws, hs = stride * scale / h_ratios, stride * scale * h_ratios
        base = torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], 1)
        yy, xx = torch.meshgrid(torch.arange(H) * stride, torch.arange(W) * stride, indexing="ij")
        shifts = torch.stack([xx.flatten(), yy.flatten()] * 2, 1).float()
        anchors = (shifts[:, None] + base[None]).reshape(-1, 4)
        if 0 < nms_pre < len(scores):
            scores, order = scores.sort(descending=True)
            scores, deltas, anchors = scores[:nms_pre], deltas[order[:nms_pre]], anchors[order[:nms_pre]]
        all_boxes.append(mmdet_decode(anchors, deltas, (1.0, 1.0, 1.0, 1.0), img_shape))
        all_scores.append(scores)
        all_levels.append(torch.full_like(scores, level, dtype=torch.long))
    boxes, scores, levels = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_levels)
    valid = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
    boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
    keep = batched_nms(boxes, scores, levels, 0.7)[:max_per_img]
    return boxes[keep]


def test_rpn_proposals_equal_mmdetection_procedure(tmp_path):
    det = tiny_released_detector(0)
    det.rpn._pre_nms_top_n, det.rpn._post_nms_top_n = dict(testing=300, training=300), dict(testing=100, training=100)
    det.transform.min_size, det.transform.max_size = (200,), 300  # most proposals inside the image
    sd = torch.load(write_released_checkpoint(det, tmp_path / "m.pth"), weights_only=True)["state_dict"]
    images, _ = det.transform([torch.rand(3, 70, 90)])
    with torch.no_grad():
        features = det.backbone.features(det.stpn.backbone(images.tensors))
        ours = det.rpn(images, features)[0][0]
        ref = mmdet_rpn_proposals(sd, list(features.values()), images.image_sizes[0], 300, 100)
    assert len(ours) == len(ref) == 100
    assert torch.allclose(ours, ref, atol=1e-4)


def test_rcnn_detections_equal_mmdetection_procedure_on_released_weights(tmp_path):
    from torchvision.ops import batched_nms
    det = tiny_released_detector(0)
    sd = torch.load(write_released_checkpoint(det, tmp_path / "m.pth"), weights_only=True)["state_dict"]
    image = torch.rand(3, 70, 90)
    images, _ = det.transform([image])
    with torch.no_grad():
        features = det.backbone.features(det.stpn.backbone(images.tensors))
        proposals = det.rpn(images, features)[0]
        ours = det.roi_heads(features, proposals, images.image_sizes)[0][0]
        ours = det.transform.postprocess([ours], images.image_sizes, [(70, 90)])[0]
        # mmdetection: shared fcs, fc_cls (background LAST), class-specific fc_reg, decode (stds 0.2),
        # clip to the resized image, divide by the scale factor, score > 1e-4, class-wise NMS 0.5, 100 best
        w = lambda name: sd[f"detector.roi_head.bbox_head.{name}"]  # noqa: E731
        x = det.roi_heads.box_roi_pool(features, proposals, images.image_sizes).flatten(1)
        x = F.relu(F.linear(F.relu(F.linear(x, w("shared_fcs.0.weight"), w("shared_fcs.0.bias"))),
                            w("shared_fcs.1.weight"), w("shared_fcs.1.bias")))
        scores = F.linear(x, w("fc_cls.weight"), w("fc_cls.bias")).softmax(-1)[:, :-1]
        deltas = F.linear(x, w("fc_reg.weight"), w("fc_reg.bias")).reshape(-1, 4)
        n, C = scores.shape
        boxes = mmdet_decode(proposals[0].repeat_interleave(C, 0), deltas, (0.2, 0.2, 0.2, 0.2), images.image_sizes[0])
        h, wd = images.image_sizes[0]
        boxes = boxes / torch.tensor([wd / 90, h / 70, wd / 90, h / 70], dtype=torch.float32)
        scores, labels = scores.reshape(-1), torch.arange(C).repeat(n)
        valid = scores > 1e-4
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        keep = batched_nms(boxes, scores, labels, 0.5)[:100]
    assert len(ours["scores"]) == len(keep) > 10
    assert_same_detections(ours, dict(boxes=boxes[keep], scores=scores[keep], labels=labels[keep] + 1),
                           box_atol=1e-3, score_atol=1e-6)


def test_stpn_eval_runs_a_released_layout_checkpoint_with_the_packaged_config(tmp_path):
    import json

    from stpn.cli import main
    path = write_released_checkpoint(tiny_released_detector(0), tmp_path / "stpn_swint_adam_9x.pth")
    data = ["data.synth={train_videos: 1, val_videos: 1, frames: 6, width: 90, height: 70, classes: 3, max_objects: 2}",
            f"data.root={tmp_path / 'data'}", "detection.det_image_set=null"]
    assert main(["eval", "vid_swin_t_released", *TINY_RELEASED, *data, "--weights", str(path),
                 "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["mode"] == "global" and 0 <= metrics["ap50_all"] <= 1
    rows = (tmp_path / "eval" / "detections.txt").read_text().splitlines()
    assert len(rows) > 0 and {int(r.split()[0]) for r in rows} <= set(range(1, 7))
