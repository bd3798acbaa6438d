"""torch.compile: the prompted backbones and the tracker compile to one graph each (no graph
breaks) and give the eager outputs. ``aot_eager`` traces and functionalises exactly as the
default backend does, without its C++ code generation (minutes on a CPU)."""
import pytest
import torch

from conftest import tiny_stpn
from stpn.tracking.model import STPNTracker


def explain(fn, *args):
    e = torch._dynamo.explain(fn)(*args)
    return e.graph_count, e.graph_break_count


@pytest.mark.parametrize("kwargs,size,K", [
    ({}, (72, 100), 2),  # Swin: padding, shifted windows
    (dict(backbone="vit_tiny_patch16_224", prompt_depth="deep"), (64, 64), 3),  # ViT, deep prompts
])
def test_prompted_backbone_compiles_to_one_graph_with_the_eager_outputs(kwargs, size, K):
    torch._dynamo.reset()
    model = tiny_stpn(**kwargs).eval()
    x, support = torch.randn(2, 3, *size), torch.randn(2, K, 3, *size)
    with torch.no_grad():
        ref = model(x, support)
        assert explain(model, x, support) == (1, 0)
        out = torch.compile(model, backend="aot_eager", fullgraph=True)(x, support)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_tracker_compile_keeps_its_outputs():
    torch._dynamo.reset()
    tracker = STPNTracker("vit_tiny_patch16_224", template_size=32, search_size=64, head_channels=8,
                          predictor_kwargs=dict(num_groups=4),
                          backbone_kwargs=dict(embed_dim=32, depth=2, num_heads=2)).eval()
    # target supports (template-sized crops, their boxes and ages): prompts and the search map
    template, search, support = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 64, 64), torch.rand(1, 2, 3, 32, 32)
    boxes, offsets = torch.tensor([[[0.4, 0.5, 0.3, 0.3], [0.5, 0.5, 0.3, 0.3]]]), torch.tensor([[-2, -1]])
    torch.nn.init.normal_(tracker.map_proj.weight, std=0.2)  # a map that is not zero
    with torch.no_grad():
        tokens = tracker.embed_template(template)
        prompts = tracker.prompts(support, offsets, boxes)
        ref = tracker.head_forward(tokens, search, prompts)
        assert explain(tracker.head_forward, tokens, search, prompts) == (1, 0)
        tracker.compile(backend="aot_eager", fullgraph=True)
        out = tracker.head_forward(tokens, search, tracker.prompts(support, offsets, boxes))
    for k in ("score", "size", "offset"):
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-5)
