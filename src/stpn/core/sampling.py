"""Support-frame sampling policies: pure functions from (t, video length, config) to frame indices.

Every policy returns exactly ``num_support`` indices in ascending order, each in
``[0, num_frames)``. Short videos repeat frames; no policy ever changes its configuration.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

POLICIES = ("global", "local", "causal", "train_bilateral")


@dataclass(frozen=True)
class SupportConfig:
    """How support frames are chosen for a key frame.

    policy: ``global`` (K spread over the whole video, once per video; released test sampler),
        ``local`` (K/2 frames before and K/2 after t, stride S), ``causal`` (K past frames on
        the stride grid, for streaming), ``train_bilateral`` (released training sampler).
    num_support: K, the number of support frames.
    stride: S, frames between two supports (``local`` and ``causal``).
    max_offset: largest |tau - t| for ``train_bilateral`` (released: 9).
    """

    policy: str = "global"
    num_support: int = 14
    stride: int = 1
    max_offset: int = 9

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"support policy must be one of {POLICIES}, got {self.policy!r}")
        if not isinstance(self.num_support, int) or self.num_support < 1:
            raise ValueError(f"num_support (K) must be an integer >= 1, got {self.num_support!r}")
        if not isinstance(self.stride, int) or self.stride < 1:
            raise ValueError(f"stride (S) must be an integer >= 1, got {self.stride!r}")
        if self.policy in ("local", "train_bilateral") and self.num_support % 2:
            raise ValueError(
                f"policy {self.policy!r} is symmetric around t and needs an even num_support (K), "
                f"got K={self.num_support}")
        if self.policy == "train_bilateral" and self.max_offset < 1:
            raise ValueError(f"max_offset must be >= 1, got {self.max_offset}")


def check_test_support(policy: str, num_support: int, stride: int, refresh_every=1, allow_once: bool = False):
    """Test-time supports by the rules of ``SupportConfig`` (K >= 1, S >= 1, even K for ``local``)
    and a refresh period that is an integer >= 1 (or ``'once'`` where ``allow_once``). Returns the
    refresh period (None for ``'once'``), for every entry point to check the same way."""
    SupportConfig(policy, num_support, stride)
    if allow_once and refresh_every == "once":
        return None
    if isinstance(refresh_every, bool) or not isinstance(refresh_every, int) or refresh_every < 1:
        accepted = "an integer >= 1 or 'once'" if allow_once else "an integer >= 1"
        raise ValueError(f"refresh_every must be {accepted}, got {refresh_every!r}")
    return refresh_every


def _check_frame(t: int, num_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not 0 <= t < num_frames:
        raise ValueError(f"frame index t={t} outside the video of {num_frames} frames")


def global_support(num_frames: int, num_support: int) -> list[int]:
    """K frames spread uniformly over the whole video: ``round(i * (N - 1) / (K - 1))``.

    Python's ``round`` (half to even) as in the released test sampler. The same for every t.
    """
    _check_frame(0, num_frames)
    if num_support == 1:
        return [round((num_frames - 1) / 2)]
    step = (num_frames - 1) / (num_support - 1)
    return [round(i * step) for i in range(num_support)]


def local_support(t: int, num_frames: int, num_support: int, stride: int) -> list[int]:
    """K/2 frames before t and K/2 after, ``stride`` apart, clipped into the video."""
    _check_frame(t, num_frames)
    half = num_support // 2
    offsets = [-stride * j for j in range(half, 0, -1)] + [stride * j for j in range(1, half + 1)]
    return sorted(min(max(t + o, 0), num_frames - 1) for o in offsets)


def causal_support(t: int, num_frames: int, num_support: int, stride: int) -> list[int]:
    """The K most recent frames before t on the stride grid (indices divisible by S).

    Past only, so a stream can compute it online: every S-th frame is embedded once and kept in
    a cache of K. With S=1 these are t-1, ..., t-K. Missing history is padded with the oldest
    available frame; at t=0 the only available frame is t itself.
    """
    _check_frame(t, num_frames)
    if t == 0:
        return [0] * num_support
    last = ((t - 1) // stride) * stride
    frames = [last - j * stride for j in range(num_support) if last - j * stride >= 0]
    frames = frames[::-1]
    return [frames[0]] * (num_support - len(frames)) + frames


def train_bilateral_support(t: int, num_frames: int, num_support: int = 2, max_offset: int = 9,
                            rng: random.Random | None = None) -> list[int]:
    """Released training sampler: K/2 frames drawn from [t-9, t-1] and K/2 from [t+1, t+9].

    Each side is clipped to the video and sampled without replacement; a short side gives fewer
    frames and the result is padded with the first frame drawn (the key frame itself when the
    video has a single frame, i.e. still images use copies of themselves).
    """
    _check_frame(t, num_frames)
    rng = rng if rng is not None else random.Random()
    half = num_support // 2
    left = list(range(max(0, t - max_offset), t))
    right = list(range(t + 1, min(num_frames - 1, t + max_offset) + 1))
    chosen = []
    for side in (left, right):
        chosen += rng.sample(side, min(half, len(side)))
    if not chosen:
        chosen = [t]
    chosen += [chosen[0]] * (num_support - len(chosen))
    return sorted(chosen)


def support_indices(t: int, num_frames: int, config: SupportConfig,
                    rng: random.Random | None = None) -> list[int]:
    """Support frame indices of key frame ``t`` in a video of ``num_frames`` frames."""
    if config.policy == "global":
        _check_frame(t, num_frames)
        return global_support(num_frames, config.num_support)
    if config.policy == "local":
        return local_support(t, num_frames, config.num_support, config.stride)
    if config.policy == "causal":
        return causal_support(t, num_frames, config.num_support, config.stride)
    return train_bilateral_support(t, num_frames, config.num_support, config.max_offset, rng)
