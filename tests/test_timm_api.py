"""timm's private calls (stpn.core.timm_api) against their definitions, at the installed timm."""
import math

import torch
from timm.models.swin_transformer import WindowAttention
from timm.models.vision_transformer import VisionTransformer

from stpn.core import timm_api

WHICH = f"timm {timm_api.version()} (stpn was last tested with {timm_api.TESTED})"


def test_relative_position_bias_is_the_table_indexed_by_relative_offsets():
    torch.manual_seed(0)
    attn = WindowAttention(dim=8, num_heads=2, window_size=(3, 4))
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    bias = timm_api.relative_position_bias(attn)
    assert bias.shape == (1, 2, 12, 12), f"{WHICH}: relative-position bias has shape {tuple(bias.shape)}"
    coords = [(i, j) for i in range(3) for j in range(4)]  # the Swin definition: index (dy + 2) * 7 + (dx + 3)
    table = attn.relative_position_bias_table  # ((2*3-1) * (2*4-1), heads)
    for a, (y1, x1) in enumerate(coords):
        for b, (y2, x2) in enumerate(coords):
            expected = table[(y1 - y2 + 2) * 7 + (x1 - x2 + 3)]
            assert torch.equal(bias[0, :, a, b], expected), f"{WHICH}: bias[{a}, {b}] is not the table entry"


def test_position_embed_prepends_the_class_token_and_adds_the_embedding():
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2).eval()
    with torch.no_grad():
        vit.pos_embed.normal_()
        vit.cls_token.normal_()
    tokens = torch.randn(2, 16, 16)
    out = timm_api.position_embed(vit, tokens)
    expected = torch.cat([vit.cls_token.expand(2, -1, -1), tokens], dim=1) + vit.pos_embed
    assert out.shape == (2, 17, 16) and math.isclose(float((out - expected).abs().max().detach()), 0.0, abs_tol=1e-6), WHICH
