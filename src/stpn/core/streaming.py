"""Per-video streaming state: the caller holds it, modules stay stateless.

Online (``causal``): every S-th frame (the stride grid) is embedded once by the unprompted
backbone, and only if a later prompt refresh will read it; the cache keeps the K most recent
embeddings (memory O(K)). Prompts are recomputed every ``refresh_every`` frames (1 = every
frame, ``"once"`` = at frame 0 only) from ``causal_support(r)`` where r is the refresh frame,
so frame t uses the prompts of r = refresh_every * (t // refresh_every) and the support
offsets are tau - r.
Per-frame cost: 1 prompted pass + (embedded grid frames + one predictor call) per refresh.

Offline (``global``): K frames spread over the whole video are embedded once when the
stream is created (released test protocol: uses future frames).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import torch

from .sampling import causal_support, check_test_support, global_support


@dataclass
class StreamState:
    """Everything STPN remembers about one video; ``STPN.step`` reads and returns it."""

    policy: str
    num_support: int
    stride: int
    refresh_every: int | None  # None: once
    t: int = 0  # index of the next frame
    cache: deque = field(default_factory=deque)  # (frame index, {stage: tokens (1, n, d)})
    grids: dict | None = None
    prompts: object = None
    support_index: list[int] | None = None  # frames behind the current prompts
    embedded: int = 0  # unprompted passes run so far
    refreshes: int = 0  # predictor calls so far


def new_stream(model, policy: str, num_support: int, stride: int, refresh_every, video=None) -> StreamState:
    if not model.prompting:
        raise ValueError("new_stream needs an STPN built with prompting=True")
    if policy not in ("causal", "global"):
        raise ValueError(f"stream policy must be 'causal' (online) or 'global' (offline), got {policy!r}")
    refresh = check_test_support("causal", num_support, stride, refresh_every, allow_once=True)
    state = StreamState(policy, num_support, stride, refresh, cache=deque(maxlen=num_support))
    if policy == "global":
        if video is None:
            raise ValueError("policy 'global' needs the whole video: new_stream(..., video=frames)")
        index = global_support(len(video), num_support)
        support = torch.stack([video[i] for i in index]).unsqueeze(0)
        with torch.no_grad():
            tokens, state.grids = model.encode_support(support)
            state.prompts = model.predict_prompts(tokens, state.grids)
        state.support_index, state.embedded, state.refreshes = index, len(index), 1
        state.refresh_every = None
    return state


def _refresh_frame(state: StreamState, t: int) -> int:
    return 0 if state.refresh_every is None else (t // state.refresh_every) * state.refresh_every


def _needed(state: StreamState, tau: int) -> bool:
    """Will a later refresh read frame tau (a grid frame) as support?"""
    if tau == 0:
        return True
    if state.refresh_every is None:
        return False
    r = (tau // state.refresh_every + 1) * state.refresh_every  # next refresh after tau
    last = ((r - 1) // state.stride) * state.stride
    return tau >= last - (state.num_support - 1) * state.stride


def _embed(model, frame: torch.Tensor, state: StreamState, t: int) -> None:
    with torch.no_grad():
        tokens, grids = model.encode_support(frame.unsqueeze(1))
    state.grids = grids
    state.cache.append((t, {s: v[:, 0] for s, v in tokens.items()}))
    state.embedded += 1


def step(model, frame: torch.Tensor, state: StreamState):
    """Stage maps of the next frame (3, H, W) or (1, 3, H, W), and the updated state."""
    if frame.dim() == 3:
        frame = frame.unsqueeze(0)
    if frame.dim() != 4 or frame.shape[0] != 1:
        raise ValueError(f"step takes one frame of shape (3, H, W) or (1, 3, H, W), got {tuple(frame.shape)}")
    t = state.t
    if state.policy == "causal":
        if t == 0:
            _embed(model, frame, state, 0)
        if state.prompts is None or (state.refresh_every is not None and t % state.refresh_every == 0):
            index = causal_support(t, t + 1, state.num_support, state.stride)
            cached = dict(state.cache)
            missing = [i for i in index if i not in cached]
            if missing:  # cannot happen unless the state was edited by hand
                raise RuntimeError(f"stream cache lacks support frames {missing} at frame {t}")
            tokens = {s: torch.stack([cached[i][s] for i in index], dim=1) for s in cached[index[0]]}
            offsets = torch.tensor([[i - t for i in index]], device=frame.device)
            with torch.no_grad():
                state.prompts = model.predict_prompts(tokens, state.grids, offsets)
            state.support_index = index
            state.refreshes += 1
        if t > 0 and t % state.stride == 0 and _needed(state, t):
            _embed(model, frame, state, t)
    with torch.no_grad():
        feats = model.backbone(frame, state.prompts)
    state.t = t + 1
    return feats, state
