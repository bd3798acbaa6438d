"""The support stream: the prompts of each frame of one video, every inference path's one source.

The caller holds a ``SupportStream`` per video and asks it for the prompts of frame t, giving a
callback ``image_of(i)`` that returns the unprompted backbone's input for frame i as
(1, 3, H, W): the task decides what that is (the detector's resized frame, the tracker's
search crop), the stream decides which frames are read and when. Modules stay stateless.

Policies (``stpn.core.sampling``):

- ``global`` (offline, released test protocol): K frames spread over the whole video, embedded
  once and turned into prompts once, at the first frame asked for. Needs ``num_frames``.
- ``local`` (offline): K/2 frames before and K/2 after t, stride S; prompts per frame, offsets
  tau - t. A frame is embedded once and dropped when no later frame reads it. Needs
  ``num_frames``.
- ``causal`` (online): frames are asked for in order 0, 1, 2, ... and ``image_of`` is only ever
  called for the current frame. Every S-th frame (the stride grid) is embedded when it is the
  current frame, and only if a later refresh reads it; the cache keeps the K most recent (memory
  O(K)).

One refresh rule for the causal policy: prompts are computed at the first frame that asks for
them and at every frame r with r % refresh_every == 0 (``"once"``: never again), from
``causal_support(r)`` with offsets tau - r; frames in between reuse them. A detector asks from
frame 0 (so r = 0, R, 2R, ...); a tracker only observes frame 0 (its first box is given) and
asks from frame 1 (so r = 1, R, 2R, ...).
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import torch

from .sampling import causal_support, check_test_support, global_support, local_support

ImageOf = Callable[[int], torch.Tensor]  # frame index -> (1, 3, H, W) input of the unprompted pass


class SupportStream:
    """Everything STPN remembers about one video's support frames.

    Counters: ``embedded`` (unprompted passes run), ``refreshes`` (predictor calls);
    ``support_index`` are the frames behind the current prompts.
    """

    def __init__(self, policy: str = "causal", num_support: int = 4, stride: int = 1, refresh_every=1,
                 num_frames: int | None = None):
        if policy not in ("global", "local", "causal"):
            raise ValueError(f"support policy at test time must be global, local or causal, got {policy!r}")
        refresh = check_test_support(policy, num_support, stride, refresh_every, allow_once=True)
        if policy != "causal" and num_frames is None:
            raise ValueError(f"policy {policy!r} reads frames of the whole video: give num_frames")
        self.policy, self.num_support, self.stride, self.num_frames = policy, num_support, stride, num_frames
        self.refresh_every = refresh if policy == "causal" else None
        self.t = 0  # the next frame a causal stream expects
        self.cache: deque | dict = deque(maxlen=num_support) if policy == "causal" else {}
        self.grids: dict | None = None
        self.prompts = None
        self.support_index: list[int] | None = None
        self.video = None  # the frames ``STPN.step`` reads for global and local streams
        self.embedded = 0
        self.refreshes = 0

    # public --------------------------------------------------------------------------------
    def observe(self, model, t: int, image_of: ImageOf) -> None:
        """Causal: frame t passes by without prompts being asked for (a tracker's first frame);
        it is embedded if a later refresh reads it."""
        self._expect(t)
        self._keep(model, t, image_of)
        self.t = t + 1

    def prompts_at(self, model, t: int, image_of: ImageOf):
        """The prompts of frame t (refreshed when the policy says so)."""
        if self.policy == "causal":
            self._expect(t)
            if t == 0:
                self._keep(model, 0, image_of)
            if self.prompts is None or (self.refresh_every is not None and t % self.refresh_every == 0):
                index = causal_support(t, t + 1, self.num_support, self.stride)
                cached = dict(self.cache)
                missing = [i for i in index if i not in cached]
                if missing:  # only when frames were skipped or the state edited by hand
                    raise RuntimeError(f"the support cache lacks frames {missing} at frame {t}")
                tokens = {s: torch.stack([cached[i][s] for i in index], dim=1) for s in cached[index[0]]}
                self._predict(model, tokens, index, t)
            if t > 0:
                self._keep(model, t, image_of)
            self.t = t + 1
            return self.prompts
        if not 0 <= t < self.num_frames:
            raise ValueError(f"frame {t} is outside the video of {self.num_frames} frames")
        if self.policy == "global" and self.prompts is not None:
            return self.prompts
        index = (global_support(self.num_frames, self.num_support) if self.policy == "global"
                 else local_support(t, self.num_frames, self.num_support, self.stride))
        for i in dict.fromkeys(index):
            if i not in self.cache:
                self.cache[i] = self._embed(model, image_of(i))
        tokens = {s: torch.stack([self.cache[i][s] for i in index], dim=1) for s in self.cache[index[0]]}
        self._predict(model, tokens, index, t if self.policy == "local" else None)
        if self.policy == "global":
            self.cache.clear()
        else:  # keep only what later frames still read
            for i in [i for i in self.cache if i < t + 1 - (self.num_support // 2) * self.stride]:
                del self.cache[i]
        return self.prompts

    # internals -----------------------------------------------------------------------------
    def _expect(self, t: int) -> None:
        if t != self.t:
            raise ValueError(f"a causal stream takes frames in order: expected frame {self.t}, got {t}")

    def _embed(self, model, image: torch.Tensor) -> dict:
        if image.dim() != 4 or image.shape[0] != 1:
            raise ValueError(f"image_of(i) must return one image of shape (1, 3, H, W), got {tuple(image.shape)}")
        with torch.no_grad():
            tokens, self.grids = model.encode_support(image.unsqueeze(1))
        self.embedded += 1
        return {s: v[:, 0] for s, v in tokens.items()}

    def _needed(self, tau: int) -> bool:
        """Will a later refresh read frame tau as support?"""
        if tau % self.stride:
            return False
        if tau == 0:
            return True
        if self.refresh_every is None:
            return False
        r = (tau // self.refresh_every + 1) * self.refresh_every  # the next refresh after tau
        last = ((r - 1) // self.stride) * self.stride
        return tau >= last - (self.num_support - 1) * self.stride

    def _keep(self, model, t: int, image_of: ImageOf) -> None:
        if self._needed(t):
            self.cache.append((t, self._embed(model, image_of(t))))

    def _predict(self, model, tokens: dict, index: list[int], origin: int | None) -> None:
        device = next(iter(tokens.values())).device
        offsets = None if origin is None else torch.tensor([[i - origin for i in index]], device=device)
        with torch.no_grad():
            self.prompts = model.predict_prompts(tokens, self.grids, offsets)
        self.support_index = index
        self.refreshes += 1


def new_stream(model, policy: str, num_support: int, stride: int, refresh_every, video=None) -> SupportStream:
    """A stream over plain frame tensors for ``STPN.step``; ``global`` and ``local`` need the
    video (a (T, 3, H, W) tensor or a sequence of (3, H, W) frames)."""
    if not model.prompting:
        raise ValueError("new_stream needs an STPN built with prompting=True")
    if policy in ("global", "local") and video is None:
        raise ValueError(f"policy {policy!r} needs the whole video: new_stream(..., video=frames)")
    stream = SupportStream(policy, num_support, stride, refresh_every, None if video is None else len(video))
    stream.video = video
    return stream


def step(model, frame: torch.Tensor, state: SupportStream):
    """Stage maps of the next frame (3, H, W) or (1, 3, H, W) of a ``new_stream``, and the state."""
    if frame.dim() == 3:
        frame = frame.unsqueeze(0)
    if frame.dim() != 4 or frame.shape[0] != 1:
        raise ValueError(f"step takes one frame of shape (3, H, W) or (1, 3, H, W), got {tuple(frame.shape)}")
    t = state.t
    video = state.video
    image_of = (lambda i: frame) if video is None else (lambda i: video[i].reshape(1, *video[i].shape[-3:]))
    prompts = state.prompts_at(model, t, image_of)
    state.t = t + 1
    with torch.no_grad():
        feats = model.backbone(frame, prompts)
    return feats, state
