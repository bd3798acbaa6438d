import pytest
import torch

from stpn.core.predictors import (
    PREDICTORS,
    AttentionPredictor,
    DecoderPredictor,
    MixerPredictor,
    TopKMeanPredictor,
    build_predictor,
)


def test_attention_predictor_has_released_parameter_count_at_swin_t_dims():
    predictor = AttentionPredictor(768, 96, num_prompts=5, num_groups=16)
    assert sum(p.numel() for p in predictor.parameters()) == 111_552


def released_attention(sd, ref_x, groups=16):
    """The released forward for one clip, written out: ref_x (K*n, d_L) -> (N_P, D)."""
    lin = lambda x, name: x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]  # noqa: E731
    ref = lin(ref_x, "reduction")
    x = sd["query"]
    n, m = x.shape[0], ref.shape[0]
    q = lin(x, "fc_embed").view(n, groups, -1).permute(1, 0, 2)
    k = lin(ref, "ref_fc_embed").view(m, groups, -1).permute(1, 2, 0)
    w = (torch.bmm(q, k) / q.shape[-1] ** 0.5).softmax(dim=2)
    v = lin(ref, "ref_fc").view(m, groups, -1).permute(1, 0, 2)
    return lin(torch.bmm(w, v).permute(1, 0, 2).reshape(n, -1), "fc")


def test_attention_predictor_equals_released_computation_and_loads_released_keys():
    ours = AttentionPredictor(768, 96)
    released = {k.replace("q_proj", "fc_embed").replace("k_proj", "ref_fc_embed")
                 .replace("v_proj", "ref_fc").replace("out_proj", "fc"): v
                for k, v in ours.state_dict().items()}
    assert set(released) == {"reduction.weight", "reduction.bias", "query", "fc_embed.weight",
                             "fc_embed.bias", "ref_fc_embed.weight", "ref_fc_embed.bias",
                             "ref_fc.weight", "ref_fc.bias", "fc.weight", "fc.bias"}
    loaded = AttentionPredictor(768, 96)
    loaded.load_state_dict(AttentionPredictor.convert_released(released))
    tokens = torch.randn(1, 3, 49, 768)
    with torch.no_grad():
        assert (loaded(tokens)[0] - released_attention(released, tokens.reshape(-1, 768))).abs().max() < 1e-5


def test_topk_mean_keeps_largest_l1_tokens_per_frame_and_averages_frames():
    predictor = TopKMeanPredictor(2, 2, num_prompts=2)
    with torch.no_grad():
        predictor.reduction.weight.copy_(torch.eye(2))
        predictor.reduction.bias.zero_()
    frame0 = torch.tensor([[1.0, 0.0], [5.0, -5.0], [0.0, 3.0]])  # L1 norms 1, 10, 3
    frame1 = torch.tensor([[-2.0, -2.0], [0.5, 0.0], [7.0, 1.0]])  # L1 norms 4, 0.5, 8
    out = predictor(torch.stack([frame0, frame1])[None])
    # ranked tokens: frame0 -> (5,-5), (0,3); frame1 -> (7,1), (-2,-2)
    assert out[0].tolist() == [[6.0, -2.0], [-1.0, 0.5]]


def test_topk_mean_rejects_frames_with_fewer_tokens_than_prompts():
    with pytest.raises(ValueError, match="at least N_P=5 tokens"):
        TopKMeanPredictor(8, 4, num_prompts=5)(torch.randn(1, 2, 3, 8))


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_predictor_sample_alone_equals_sample_in_batch(name):
    predictor = build_predictor(name, 24, 16, 5, **({"num_groups": 4} if name == "attention" else {})).eval()
    tokens, offsets = torch.randn(3, 2, 16, 24), torch.tensor([[-3, 2], [-1, 1], [0, 5]])
    with torch.no_grad():
        batch = predictor(tokens, grid_size=(4, 4), offsets=offsets)
        assert batch.shape == (3, 5, 16)
        for i in range(3):
            alone = predictor(tokens[i:i + 1], grid_size=(4, 4), offsets=offsets[i:i + 1])
            assert (alone[0] - batch[i]).abs().max() < 1e-5


def test_mixer_accepts_any_number_of_support_frames_and_needs_the_grid():
    predictor = MixerPredictor(24, 16, 5, grid=2)
    assert predictor(torch.randn(1, 2, 12, 24), grid_size=(3, 4)).shape == (1, 5, 16)
    assert predictor(torch.randn(1, 7, 12, 24), grid_size=(3, 4)).shape == (1, 5, 16)
    with pytest.raises(ValueError, match="grid_size"):
        predictor(torch.randn(1, 2, 12, 24))


def test_decoder_reads_frame_offsets():
    predictor = DecoderPredictor(24, 16, 5, max_offset=8).eval()
    tokens = torch.randn(1, 2, 6, 24)
    with torch.no_grad():
        near = predictor(tokens, offsets=torch.tensor([[-1, 1]]))
        far = predictor(tokens, offsets=torch.tensor([[-8, 8]]))
        clipped = predictor(tokens, offsets=torch.tensor([[-50, 50]]))
    assert (near - far).abs().max() > 1e-4
    assert torch.equal(far, clipped)


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_predictors_reject_tokens_of_the_wrong_width(name):
    predictor = build_predictor(name, 24, 16, 5, **({"num_groups": 4} if name == "attention" else {}))
    with pytest.raises(ValueError, match=r"\(B, K, n, d_L=24\)"):
        predictor(torch.randn(1, 2, 16, 32), grid_size=(4, 4))


def test_unknown_predictor_is_named():
    with pytest.raises(ValueError, match="unknown predictor 'lstm'"):
        build_predictor("lstm", 8, 8, 5)
