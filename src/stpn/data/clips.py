"""Key frame + support frames, for any video of the data layer."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from ..core.sampling import SupportConfig, support_indices
from .corrupt import TrainCorruption, corrupt
from .types import FrameTargets, Video


@dataclass
class Sample:
    """One key frame with its support frames. Images are uint8 (3, H, W) tensors."""

    video: str
    index: int
    frame: torch.Tensor  # (3, H, W) uint8
    support: torch.Tensor  # (K, 3, H, W) uint8
    support_index: list[int]
    targets: FrameTargets | None


def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(frame, copy=True)).permute(2, 0, 1)


class VideoItems(torch.utils.data.Dataset):
    """What the training engine needs of a dataset: ``items`` whose first entry (or the item
    itself) is a video index, ``video_of_item`` for sharding by video, ``set_epoch``, and a
    subclass's ``__getitem__`` and ``collate``."""

    items: list
    epoch: int = 0

    @property
    def video_of_item(self) -> list[int]:
        return [i[0] if isinstance(i, tuple) else i for i in self.items]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)


class ClipDataset(VideoItems):
    """Every ``key_stride``-th frame of every video as a key frame, with supports chosen by a
    sampling policy. Frames are decoded when a sample is asked for; ``train_bilateral`` draws
    from a generator seeded by (seed, epoch, sample index), so a sample is reproducible."""

    def __init__(self, videos: list[Video], support: SupportConfig, key_stride: int = 1, seed: int = 0,
                 corruption: TrainCorruption | None = None):
        if key_stride < 1:
            raise ValueError(f"key_stride must be >= 1, got {key_stride}")
        self.videos, self.support, self.seed, self.epoch = videos, support, seed, 0
        self.corruption = corruption  # training-time corruption of key frames and supports (None: clean)
        self.items = [(v, t) for v in range(len(videos)) for t in range(0, len(videos[v]), key_stride)]

    def oversample(self, frames: dict[str, list[int]], times: int) -> None:
        """List the key frames named in ``frames`` (video name -> frame numbers) ``times`` times
        in all, e.g. to train more often on deteriorated frames. Named frames that are not key
        frames (``key_stride`` > 1) stay out, as every other non-key frame."""
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        index = {v.name: i for i, v in enumerate(self.videos)}
        keys = set(self.items)
        extra = []
        for name, ts in frames.items():
            if name not in index:
                raise KeyError(f"video {name!r} is not in this dataset")
            for t in ts:
                if not 0 <= t < len(self.videos[index[name]]):
                    raise ValueError(f"video {name!r}: frame {t} is outside its {len(self.videos[index[name]])} frames")
                if (index[name], t) in keys:
                    extra.append((index[name], t))
        self.items += extra * (times - 1)

    def __getitem__(self, i: int) -> Sample:
        v, t = self.items[i]
        return self.clip(v, t, random.Random(hash((self.seed, self.epoch, i))))

    def clip(self, v: int, t: int, rng: random.Random) -> Sample:
        """Frame ``t`` of video ``v`` with supports drawn from ``rng``."""
        video = self.videos[v]
        index = support_indices(t, len(video), self.support, rng)
        plan = self.corruption.draw(rng) if self.corruption is not None else None
        if plan is None:
            frame = _tensor(video.frames[t])
            support = torch.stack([_tensor(video.frames[j]) if j != t else frame for j in index])
        else:
            kind, severity, mode, seed = plan
            cache = {}

            def read(j: int, hit: bool) -> torch.Tensor:  # frame j, corrupted when ``hit`` (seeded by j)
                if (j, hit) not in cache:
                    cache[j, hit] = _tensor(corrupt(video.frames[j], kind, severity, (seed, j)) if hit
                                            else video.frames[j])
                return cache[j, hit]
            frame = read(t, mode in ("all", "key"))
            support = torch.stack([read(j, mode in ("all", "support")) for j in index])
        return Sample(video.name, t, frame, support, index, video.targets[t] if video.targets else None)
