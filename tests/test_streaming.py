import pytest
import torch

from conftest import tiny_stpn
from stpn.core.sampling import causal_support, global_support


def offline(model, video, t, index, offset_origin):
    support = video[index].unsqueeze(0)
    offsets = torch.tensor([[i - offset_origin for i in index]])
    with torch.no_grad():
        return model(video[t:t + 1], support, offsets)


@pytest.mark.parametrize("num_support, stride, refresh", [(3, 2, 4), (2, 1, 1), (3, 1, "once"), (2, 3, 5)])
@pytest.mark.parametrize("predictor", ["attention", "decoder"])
def test_causal_stream_equals_offline_computation(num_support, stride, refresh, predictor):
    model = tiny_stpn(predictor=predictor).eval()
    video = torch.randn(13, 3, 32, 48)  # not square
    state = model.new_stream("causal", num_support=num_support, stride=stride, refresh_every=refresh)
    for t in range(len(video)):
        feats, state = model.step(video[t], state)
        r = 0 if refresh == "once" else (t // refresh) * refresh
        index = causal_support(r, len(video), num_support, stride)
        assert state.support_index == index
        for a, b in zip(feats, offline(model, video, t, index, r)):
            assert (a - b).abs().max() < 1e-5
        assert len(state.cache) <= num_support
    assert state.embedded <= len(video)  # each frame embedded at most once


def test_global_stream_computes_prompts_once_from_the_whole_video():
    model = tiny_stpn().eval()
    video = torch.randn(9, 3, 32, 32)
    state = model.new_stream("global", num_support=4, video=video)
    index = global_support(9, 4)
    for t in range(9):
        feats, state = model.step(video[t], state)
        for a, b in zip(feats, offline(model, video, t, index, 0)):
            assert (a - b).abs().max() < 1e-5
    assert state.refreshes == 1 and state.embedded == 4


def test_refresh_every_eight_embeds_only_frames_a_refresh_reads():
    model = tiny_stpn().eval()
    video = torch.randn(33, 3, 32, 32)
    state = model.new_stream("causal", num_support=4, stride=1, refresh_every=8)
    for frame in video:
        _, state = model.step(frame, state)
    # refreshes at 0, 8, 16, 24, 32 read frames 0 and {r-4..r-1}: 1 + 4 * 4 embeddings
    assert state.refreshes == 5 and state.embedded == 17


def test_long_stream_keeps_the_cache_at_k():
    one_block_stages = dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=2)
    model = tiny_stpn(predictor="topk_mean", num_prompts=1, backbone_kwargs=one_block_stages).eval()
    frame = torch.randn(3, 16, 16)
    state = model.new_stream("causal", num_support=3, stride=1, refresh_every=1)
    sizes = set()
    for _ in range(5000):
        _, state = model.step(frame, state)
        sizes.add(len(state.cache))
    assert state.t == 5000 and state.embedded == 5000
    assert max(sizes) == 3 and state.cache.maxlen == 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(policy="local"), "needs the whole video"),
    (dict(policy="sideways"), "global, local or causal"),
    (dict(policy="causal", refresh_every=0), "refresh_every"),
    (dict(policy="causal", stride=0), "stride"),
    (dict(policy="global"), "needs the whole video"),
])
def test_bad_stream_configuration_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_stpn().new_stream(**kwargs)


def test_single_frame_model_has_no_stream():
    with pytest.raises(ValueError, match="prompting=True"):
        tiny_stpn(prompting=False).new_stream()


@pytest.mark.parametrize("num_support, stride", [(2, 1), (4, 2)])
def test_local_stream_equals_offline_computation_and_embeds_each_frame_once(num_support, stride):
    from stpn.core.sampling import local_support
    model = tiny_stpn(predictor="decoder").eval()
    video = torch.randn(9, 3, 32, 32)
    state = model.new_stream("local", num_support=num_support, stride=stride, video=video)
    for t in range(len(video)):
        feats, state = model.step(video[t], state)
        index = local_support(t, len(video), num_support, stride)
        assert state.support_index == index
        for a, b in zip(feats, offline(model, video, t, index, t)):
            assert (a - b).abs().max() < 1e-5
        assert len(state.cache) <= num_support * stride  # frames t-KS/2+1 .. t+KS/2 at most
    assert state.embedded == len(video) and state.refreshes == len(video)


def test_a_short_video_embeds_a_repeated_support_frame_once():
    model = tiny_stpn().eval()
    video = torch.randn(3, 3, 32, 32)
    state = model.new_stream("global", num_support=6, video=video)
    feats, state = model.step(video[0], state)
    assert state.support_index == global_support(3, 6) and state.embedded == 3
    for a, b in zip(feats, offline(model, video, 0, global_support(3, 6), 0)):
        assert (a - b).abs().max() < 1e-5


def test_causal_stream_refuses_frames_out_of_order():
    from stpn.core.streaming import SupportStream
    model = tiny_stpn().eval()
    stream = SupportStream("causal", 2, 1, 1)
    frame = torch.randn(1, 3, 32, 32)
    stream.prompts_at(model, 0, lambda i: frame)
    with pytest.raises(ValueError, match="expected frame 1, got 2"):
        stream.prompts_at(model, 2, lambda i: frame)
