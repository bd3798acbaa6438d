"""Target supports of the tracker: crops centred on the target, where it was in the current
search crop, the confidence gate of the memory, the sequence sampler and the generated runs."""
import numpy as np
import pytest
import torch
from test_tracking import moving_square, tiny_config, tiny_tracker

from stpn.tracking.model import crop_frame, crop_region, decode, from_crop, to_crop
from stpn.tracking.task import TrackingTask
from stpn.tracking.tracker import TargetMemory, sanitize, start, step


def target_tracker(**kw):
    return tiny_tracker(True, supports="target", **kw)


def awake(model, seed=0):
    """Give the box embedding and the map's projection (zero at init) random weights, as training would."""
    g = torch.Generator().manual_seed(seed)
    for emb in model.box_embed.values():
        emb.pos_scale.data = torch.randn(emb.pos_scale.shape, generator=g)
        emb.mlp[-1].weight.data = torch.randn(emb.mlp[-1].weight.shape, generator=g) * 0.5
    if model.map_proj is not None:
        model.map_proj.weight.data = torch.randn(model.map_proj.weight.shape, generator=g) * 0.2
    return model


def flat(p):
    """The tensors of a tracker's prompts: the backbone's prompts, then the search map if any."""
    from stpn.tracking.model import SupportPrompts
    if isinstance(p, SupportPrompts):
        return [*flat(p.prompts), p.search_map]
    return [p] if isinstance(p, torch.Tensor) else list(p)


def embedded(model, crops):
    with torch.no_grad():
        return model.stpn.encode_support(crops)


# where the target was ---------------------------------------------------------------------------
def test_a_box_mapped_into_a_search_crop_and_back_is_the_same_box():
    rng = np.random.default_rng(0)
    for _ in range(200):
        box = np.array([*rng.uniform(-50, 300, 2), *rng.uniform(1, 120, 2)])
        region = crop_region(np.array([*rng.uniform(-50, 300, 2), *rng.uniform(1, 120, 2)]), rng.uniform(1, 6))
        np.testing.assert_allclose(from_crop(to_crop(box, region), region), box, rtol=1e-9, atol=1e-9)
    # a box filling the crop is (0.5, 0.5, 1, 1); the crop's top-left quarter is (0.25, 0.25, 0.5, 0.5)
    np.testing.assert_allclose(to_crop([10, 20, 40, 40], (10, 20, 40)), [0.5, 0.5, 1, 1])
    np.testing.assert_allclose(to_crop([10, 20, 20, 20], (10, 20, 40)), [0.25, 0.25, 0.5, 0.5])


def test_prompts_change_when_only_the_support_boxes_move():
    model = awake(target_tracker())
    tokens, grids = embedded(model, torch.randn(1, 2, 3, 32, 32))
    boxes = torch.tensor([[[0.5, 0.5, 0.3, 0.3], [0.55, 0.5, 0.3, 0.3]]])
    with torch.no_grad():
        a = model.support_prompts(tokens, grids, boxes)
        b = model.support_prompts(tokens, grids, boxes.clone())
        moved = boxes.clone()
        moved[0, 1, 0] = 0.8  # the newest support's target was further right
        c = model.support_prompts(tokens, grids, moved)
    for x, y, z in zip(flat(a), flat(b), flat(c)):
        torch.testing.assert_close(x, y)
        assert (x - z).abs().max() > 1e-3
    # the search crop's position embedding is read where the box is: the crop's left edge and its
    # right edge give different prompts even with the MLP part silenced
    for emb in model.box_embed.values():
        emb.mlp[-1].weight.data.zero_()
        emb.pos_scale.data.fill_(1.0)
    with torch.no_grad():
        left = model.support_prompts(tokens, grids, torch.tensor([[[0.05, 0.5, 0.2, 0.2]] * 2]))
        right = model.support_prompts(tokens, grids, torch.tensor([[[0.95, 0.5, 0.2, 0.2]] * 2]))
    assert all((x - y).abs().max() > 1e-3 for x, y in zip(flat(left), flat(right)))


def test_target_tokens_are_the_supports_centres_at_their_place_in_the_search_crop():
    """A fresh tracker's prompts per stage: the predictor's N_P prompts, then one target token per
    support = mean of its central tokens + the search crop's position embedding at its box centre
    (the MLP part starts at 0). Without support_box: the predictor's prompts alone, no boxes needed."""
    from stpn.tracking.model import centre_pool
    model = target_tracker(support_map=False)
    tokens, grids = embedded(model, torch.randn(2, 2, 3, 32, 32))
    boxes = torch.tensor([[[0.5625, 0.5625, 0.2, 0.2], [0.0625, 0.9375, 0.3, 0.2]]] * 2)  # cell centres of an 8x8 map
    with torch.no_grad():
        got = model.support_prompts(tokens, grids, boxes)
        plain = model.stpn.predict_prompts(tokens, grids)
        pos = model.search_position_map()  # D, 8, 8
    for s, (g, p) in enumerate(zip(got, plain)):
        assert g.shape == (2, 5 + 2, 32)
        torch.testing.assert_close(g[:, :5], p)
        want = centre_pool(tokens[s], grids[s]) + torch.stack([pos[:, 4, 4], pos[:, 7, 0]])[None]
        torch.testing.assert_close(g[:, 5:], want, atol=1e-5, rtol=1e-4)
    # the central half of a 4x4 grid is its middle 2x2
    grid = torch.arange(16.0).view(1, 1, 16, 1)
    assert centre_pool(grid, (4, 4)).item() == (5 + 6 + 9 + 10) / 4
    blind = target_tracker(support_box=False)
    assert blind.box_embed is None
    for g, p in zip(blind.support_prompts(tokens, grids, None), blind.stpn.predict_prompts(tokens, grids)):
        torch.testing.assert_close(g, p)
    with pytest.raises(ValueError, match="support boxes"):
        model.support_prompts(tokens, grids, None)
    with pytest.raises(ValueError, match="shape"):
        model.support_prompts(tokens, grids, torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="finite"):
        model.support_prompts(tokens, grids, torch.full((2, 2, 4), float("nan")))


def test_the_search_map_is_each_support_spread_around_its_box_centre():
    from stpn.tracking.model import SupportPrompts, support_heat
    # hand-computed bumps on a 4x4 grid: a box centred on cell (1, 2) (x, y), sqrt(w h) = 2 cells -> sigma 0.5
    heat = support_heat(torch.tensor([[[0.375, 0.625, 0.5, 0.5]]]), 4, 4)[0, 0].view(4, 4)
    assert heat[2, 1] == 1.0 and heat.argmax() == 2 * 4 + 1
    torch.testing.assert_close(heat[2, 2], torch.tensor(np.exp(-1 / (2 * 0.25)), dtype=torch.float32))
    torch.testing.assert_close(heat[0, 1], torch.tensor(np.exp(-4 / (2 * 0.25)), dtype=torch.float32))
    # a fresh tracker's map is zero (the projection starts at 0): the same outputs as without it
    model, blind = target_tracker(), target_tracker(support_map=False)
    blind.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("map_proj")})
    z, x, s = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 64, 64), torch.randn(1, 2, 3, 32, 32)
    off, boxes = torch.tensor([[-2, -1]]), torch.rand(1, 2, 4)
    with torch.no_grad():
        for k, v in model(z, x, s, off, boxes).items():
            torch.testing.assert_close(v, blind(z, x, s, off, boxes)[k])
        awake(model)
        tokens, grids = embedded(model, s)
        out = model.support_prompts(tokens, grids, torch.tensor([[[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.2, 0.2]]]))
    assert isinstance(out, SupportPrompts) and out.search_map.shape == (1, 64, 32)
    # the map is the projected target tokens times their bumps
    target = flat(out.prompts)[-1][:, 5:]  # the last stage's target tokens
    heat = support_heat(torch.tensor([[[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.2, 0.2]]]), 8, 8)
    want = torch.einsum("bkn,bkd->bnd", heat, model.map_proj(target))
    torch.testing.assert_close(out.search_map, want, atol=1e-5, rtol=1e-4)


def test_target_supports_alone_equal_the_same_supports_in_a_batch():
    model = awake(target_tracker())
    z, x, s = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 64, 64), torch.randn(3, 2, 3, 32, 32)
    off, boxes = torch.tensor([[-2, -1]] * 3), torch.rand(3, 2, 4)
    with torch.no_grad():
        batch = model(z, x, s, off, boxes)
        alone = model(z[1:2], x[1:2], s[1:2], off[1:2], boxes[1:2])
    for k in batch:
        torch.testing.assert_close(batch[k][1:2], alone[k], atol=1e-5, rtol=1e-4)


# the gate and the memory --------------------------------------------------------------------------
def test_the_confidence_gate():
    memory = TargetMemory(num_support=2, stride=2, confidence=0.5)
    assert memory.wants(4, 0.51, True)
    assert not memory.wants(4, 0.5, True)  # above the threshold, not at it
    assert not memory.wants(4, float("nan"), True)  # a NaN score is not confident
    assert not memory.wants(4, 0.9, False)  # an unusable (replaced) box never enters
    assert not memory.wants(3, 0.9, True)  # off the stride grid: not even considered
    assert (memory.admitted, memory.rejected) == (1, 3)


def test_stream_of_target_supports_equals_the_offline_computation():
    """Every frame's box == the model on crops rebuilt from the boxes the stream produced: the
    supports are the K most recent admitted frames cut around the tracker's own boxes, their boxes
    mapped into the current search crop, offsets tau - t."""
    model = awake(target_tracker())
    frames, gt = moving_square(8)
    state = start(model, frames[0], gt[0], 3, 1, 1, confidence=0.0)  # every usable frame admitted
    boxes = [gt[0]]
    for t in range(1, len(frames)):
        region = crop_region(boxes[t - 1], model.search_factor)
        before = state.stream.support_index  # the K most recent admitted frames
        box, _, state = step(model, frames[t], state)
        index = [before[0]] * (3 - len(before)) + before  # the oldest repeated up to K
        sup = torch.stack([crop_frame(frames[i], crop_region(boxes[i], 2.0), 32, "cpu", model.mean, model.std) for i in index])
        where = torch.tensor(np.stack([to_crop(boxes[i], region) for i in index]), dtype=torch.float32)
        template = crop_frame(frames[0], crop_region(gt[0], 2.0), 32, "cpu", model.mean, model.std)
        search = crop_frame(frames[t], region, 64, "cpu", model.mean, model.std)
        with torch.no_grad():
            out = model(template[None], search[None], sup[None], torch.tensor([[i - t for i in index]]), where[None])
        expected, usable = sanitize(from_crop(decode(out)[0][0].double().numpy(), region), boxes[t - 1], 96, 64)
        np.testing.assert_allclose(box, expected, rtol=1e-4, atol=1e-3)
        assert state.stream.support_index == ((before + [t])[-3:] if usable else before)  # gate at 0: usable boxes enter
        boxes.append(box)
    assert len(state.stream.entries) == 3 and state.stream.embedded == 1 + state.stream.admitted >= 4


def test_when_every_frame_is_rejected_the_supports_are_frame_0_alone():
    model = awake(target_tracker())
    frames, gt = moving_square(6)
    state = start(model, frames[0], gt[0], 3, 1, 1, confidence=0.999999)
    for t in range(1, len(frames)):
        box, score, state = step(model, frames[t], state)
        assert np.isfinite(box).all() and score < 0.999999
    memory = state.stream
    assert memory.support_index == [0] and memory.embedded == 1 and memory.admitted == 0 and memory.rejected == 5
    # the prompts are frame 0's crop repeated K times, at its box
    region = crop_region(state.box, model.search_factor)
    with torch.no_grad():
        got = memory.prompts(model, 6, region)
        crop = crop_frame(frames[0], crop_region(gt[0], 2.0), 32, "cpu", model.mean, model.std)
        tokens, grids = model.stpn.encode_support(crop[None, None].expand(1, 3, -1, -1, -1))
        where = torch.tensor(to_crop(gt[0], region), dtype=torch.float32).expand(1, 3, 4)
        want = model.support_prompts(tokens, grids, where, torch.tensor([[-6, -6, -6]]))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_the_runs_gate_is_the_one_every_entry_point_uses(tmp_path):
    """tracking.confidence travels with the model: start, the toolkit's Tracker, an export's
    manifest and the ONNX tracker use it unless told another."""
    from stpn.export import export_onnx
    from stpn.tracking import Tracker
    from stpn.tracking.build import build_tracker
    from stpn.tracking.onnx import OnnxTracker
    model = build_tracker(tiny_config(tmp_path, "tracking.confidence=0.25")).eval()
    assert model.confidence == 0.25
    frames, gt = moving_square(3)
    assert start(model, frames[0], gt[0], 2, 1, 1).stream.confidence == 0.25
    assert start(model, frames[0], gt[0], 2, 1, 1, confidence=0.7).stream.confidence == 0.7
    tracker = Tracker(model, 2, 1, 1)
    tracker.init(frames[0], gt[0])
    assert tracker.state.stream.confidence == 0.25
    pytest.importorskip("onnxruntime")
    export_onnx(model, tmp_path / "onnx", num_support=2)
    assert start(OnnxTracker(tmp_path / "onnx"), frames[0], gt[0], 2, 1, 1).stream.confidence == 0.25
    with pytest.raises(ValueError, match="confidence"):
        target_tracker(confidence=1.0)


def test_bad_inputs_to_the_target_memory_are_named():
    model = target_tracker()
    frames, gt = moving_square(3)
    with pytest.raises(ValueError, match="confidence"):
        start(model, frames[0], gt[0], 2, 1, 1, confidence=1.0)
    state = start(model, frames[0], gt[0], 2, 1, 1, confidence=0.0)
    with pytest.raises(ValueError, match="zero size"):
        step(model, frames[1], state, support_box=[10, 10, 0, 5])
    state = start(model, frames[0], gt[0], 2, 1, 1, confidence=0.0)
    with pytest.raises(ValueError, match="outside frame 1"):
        step(model, frames[1], state, support_box=[500, 10, 5, 5])


# training ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stride", [1, 2])
def test_sequences_carry_supports_from_earlier_frames_with_their_boxes(tmp_path, monkeypatch, stride):
    """With no box error, a support's box is the true box of its frame mapped into the search
    crop; the newest support of frame t+1 is frame t (the target is visible), the same crop for
    every search frame that reads it."""
    from stpn.tracking import task as task_module
    from stpn.tracking.inference import _xywh
    cfg = tiny_config(tmp_path, "tracking.support_error=[0, 0]", "tracking.sequence_length=3", "tracking.support_admit=1",
                      f"data.train_stride={stride}")
    ds = TrackingTask().train_dataset(cfg)
    calls = []
    real = task_module.crop_frame
    monkeypatch.setattr(task_module, "crop_frame",
                        lambda f, region, size, *a: calls.append((f, np.array(region), size)) or real(f, region, size, *a))
    checked = 0
    for i in range(len(ds)):
        calls.clear()
        item = ds[i]
        video = ds.videos[ds.items[i]]
        index = [next(t for t in range(len(video)) if np.array_equal(video.frames[t], f)) for f, _, _ in calls]
        searches = [(t, r) for t, (_, r, size) in zip(index, calls) if size == 64]
        supports = [(t, r) for t, (_, r, size) in list(zip(index, calls))[1:] if size == 32]
        ts = [t for t, _ in searches]
        assert ts == list(range(ts[0], ts[0] + 3))  # consecutive search frames
        assert len({t for t, _ in supports}) == len(supports)  # each support frame cut once
        for tau, r in supports:  # no error: centred on the true box, at the template's scale
            np.testing.assert_allclose(r, crop_region(_xywh(video, tau), 2.0), atol=1e-9)
        for j, (t, region) in enumerate(searches):
            taus = (t + item["offsets"][j]).tolist()
            visible = [u for u in range(t) if _xywh(video, u) is not None and u % stride == 0][-2:]
            visible = visible or [max(u for u in range(t) if _xywh(video, u) is not None)]
            assert taus == [visible[0]] * (2 - len(visible)) + visible
            for k, tau in enumerate(taus):
                np.testing.assert_allclose(item["boxes"][j, k].numpy(), to_crop(_xywh(video, tau), region), atol=1e-5)
            np.testing.assert_allclose(item["box"][j].numpy(), to_crop(_xywh(video, t), region), atol=1e-5)
            checked += 1
    assert checked == 3 * len(ds)


def test_one_step_trains_the_box_embedding(tmp_path):
    from safetensors.torch import load_file

    from stpn.engine.trainer import train
    cfg = tiny_config(tmp_path)
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in TrackingTask().build_model(cfg).state_dict().items()}
    after = load_file(str(train(cfg, TrackingTask(), max_iterations=1) / "model.safetensors"))
    moved = [k for k in before if k.startswith("box_embed") and not torch.equal(before[k], after[k])]
    assert any(k.endswith("pos_scale") for k in moved) and any(".mlp.2." in k for k in moved)


# generated runs of deterioration -----------------------------------------------------------------
def test_deteriorated_frames_come_in_runs_that_never_touch():
    from stpn.data.synth import SynthConfig, synth_video
    lengths, bad, total = [], 0, 0
    for i in range(30):
        video, chosen, kinds = synth_video(SynthConfig(frames=24, width=64, height=48, run_length=(2, 4),
                                                       deteriorated=0.4, max_objects=1), i)
        assert 0 not in chosen
        runs = np.split(np.array(chosen), np.flatnonzero(np.diff(chosen) > 1) + 1) if chosen else []
        for r in runs:
            assert len({kinds[chosen.index(t)] for t in r}) == 1  # one kind per run
            if r[-1] < 23:  # a run cut by the video's end may be shorter
                assert 2 <= len(r) <= 4
                lengths.append(len(r))
        bad, total = bad + len(chosen), total + 24
    assert set(lengths) == {2, 3, 4}
    assert abs(bad / total - 0.4) < 0.06
    # single frames (the default) never touch either
    _, chosen, _ = synth_video(SynthConfig(frames=40, width=64, height=48, deteriorated=0.5, max_objects=1), 0)
    assert chosen and all(b - a >= 2 for a, b in zip(chosen, chosen[1:]))
    with pytest.raises(ValueError, match="run_length"):
        SynthConfig(run_length=(3, 2))
    with pytest.raises(ValueError, match="period"):
        SynthConfig(period=1)


def test_the_pattern_period_sets_the_stripes():
    from stpn.data.synth import _pattern, class_names
    u = np.arange(16, dtype=np.float32)[None]
    v = np.zeros_like(u)
    stripes = _pattern(1, u, v, 8)[0]  # vertical stripes: 4 on, 4 off
    assert stripes.tolist() == [True] * 4 + [False] * 4 + [True] * 4 + [False] * 4
    assert class_names(2, 8) == ["hstripes_8px", "vstripes_8px"]


def test_the_prompt_gated_head_reads_the_prompts_and_is_off_without_them():
    plain, gated = awake(target_tracker()), awake(target_tracker(prompt_gate=True))
    gated.load_state_dict(plain.state_dict())
    z, x, s = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 64, 64), torch.randn(2, 2, 3, 32, 32)
    off, boxes = torch.tensor([[-2, -1]] * 2), torch.rand(2, 2, 4)
    with torch.no_grad():
        a, b = plain(z, x, s, off, boxes), gated(z, x, s, off, boxes)
        assert (a["score"] - b["score"]).abs().max() > 1e-4  # the search tokens were scaled by the prompts
        tokens = plain.embed_template(z)
        for k, v in plain.head_forward(tokens, x, None).items():  # no prompts: nothing to gate
            torch.testing.assert_close(gated.head_forward(tokens, x, None)[k], v)


@pytest.mark.parametrize("depth", ["shallow", "deep"])
def test_an_exported_target_tracker_tracks_like_pytorch(tmp_path, depth):
    """The predictor graph takes the supports' boxes and gives the prompts and the search map;
    the ONNX Runtime tracker follows the same boxes as PyTorch."""
    pytest.importorskip("onnxruntime")
    from stpn.export import export_onnx, read_manifest
    from stpn.tracking.onnx import OnnxTracker
    model = awake(target_tracker(prompt_depth=depth))
    export_onnx(model, tmp_path / "onnx", num_support=2)
    support = read_manifest(tmp_path / "onnx")["support"]
    assert support["boxes"] and support["search_map"] and support["prompts"][-1] == "search_map"
    onnx = OnnxTracker(tmp_path / "onnx")
    frames, gt = moving_square(6)
    a, b = start(model, frames[0], gt[0], 2, 1, 1, confidence=0.0), start(onnx, frames[0], gt[0], 2, 1, 1, confidence=0.0)
    for t in range(1, len(frames)):
        box_a, _, a = step(model, frames[t], a)
        box_b, _, b = step(onnx, frames[t], b)
        np.testing.assert_allclose(box_b, box_a, atol=0.05)
    assert a.stream.support_index == b.stream.support_index
