"""Quasi-dense association (QDTrack, Pang et al. 2021; the loss also IDOL's): an embedding head on
RoIAlign features of the R-CNN, trained on pairs of frames of one video so that the same
instance's RoIs in the two frames are similar and every other RoI is not.

- ``QuasiDenseEmbedHead``: n 3x3 convolutions with GroupNorm + ReLU on the 7x7 RoI features,
  one fully connected layer + ReLU, a linear embedding (QDTrack: 4 x 256 channels, 1024, 256-d).
- ``sample_rois``: per frame, the RPN's proposals plus the ground-truth boxes; a RoI with IoU >=
  ``pos_iou`` to an instance is that instance's, one below ``neg_iou`` to every instance is a
  negative, those between are left out; up to ``num`` RoIs, half of them positives at most and
  negatives at most ``neg_pos_ub`` times the positives.
- ``multi_positive_cross_entropy`` on the dot products of key RoIs (an instance's) against every
  RoI of the reference frame: for a key RoI with positives P and negatives N there,
  ``log(1 + sum_{p in P} sum_{n in N} exp(s_n - s_p))``; averaged over key RoIs with a positive.
- ``margin_l2_loss`` on their cosines: ``(c - 1)^2`` on positives, ``max(c - neg_margin, 0)^2`` on
  the hardest negatives (at most ``neg_pos_ub`` per positive), averaged over the pairs counted.

Written from the definitions in the papers and mmdetection's ``configs/qdtrack`` (the weights
0.25 and 1.0, the margins and the sampler's numbers are QDTrack's); torchvision has no
association head to reuse.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou


class QuasiDenseEmbedHead(nn.Module):
    """(N, C, r, r) RoI features -> (N, dim) embeddings (not normalised: the loss and the tracker
    use dot products and cosines)."""

    def __init__(self, in_channels: int, convs: int = 4, channels: int = 256, fc_dim: int = 1024, dim: int = 256,
                 roi_size: int = 7):
        super().__init__()
        if convs < 0 or channels < 1 or fc_dim < 1 or dim < 1:
            raise ValueError(f"embedding head: convs >= 0, channels, fc_dim and dim >= 1; got {convs}, {channels}, "
                             f"{fc_dim}, {dim}")
        layers, c = [], in_channels
        for _ in range(convs):
            groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
            layers += [nn.Conv2d(c, channels, 3, padding=1, bias=False), nn.GroupNorm(groups, channels),
                       nn.ReLU(inplace=True)]
            c = channels
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * roi_size * roi_size, fc_dim), nn.ReLU(inplace=True))
        self.embed = nn.Linear(fc_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.fc(self.convs(x)))


def sample_rois(proposals: torch.Tensor, boxes: torch.Tensor, ids: torch.Tensor, num: int = 256,
                pos_fraction: float = 0.5, neg_pos_ub: int = 3, pos_iou: float = 0.7, neg_iou: float = 0.5,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(RoIs (n, 4), their instance ids (n,), -1 for negatives) of one frame: ground truth added to
    ``proposals``, assigned by IoU, sampled at random (``generator``) as the module says."""
    rois = torch.cat([boxes.to(proposals), proposals.detach()])
    if not len(boxes):  # no instance: nothing is anyone's, and a frame of negatives teaches nothing alone
        return rois[:0], ids.new_zeros(0)
    best, which = box_iou(rois, boxes.to(rois)).max(1)
    pos, neg = torch.nonzero(best >= pos_iou).flatten(), torch.nonzero(best < neg_iou).flatten()
    pos = pos[torch.randperm(len(pos), generator=generator)[:int(num * pos_fraction)]]
    n_neg = min(num - len(pos), neg_pos_ub * max(len(pos), 1))
    neg = neg[torch.randperm(len(neg), generator=generator)[:n_neg]]
    keep = torch.cat([pos, neg])
    labels = torch.cat([ids.to(rois.device)[which[pos]], ids.new_full((len(neg),), -1).to(rois.device)])
    return rois[keep], labels


def multi_positive_cross_entropy(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mean over rows with a positive of ``log(1 + sum_p sum_n exp(s_n - s_p))`` (module docstring);
    0 without such rows. ``sum_p sum_n exp(s_n - s_p) = sum_n exp(s_n) * sum_p exp(-s_p)``, so a row
    costs two log-sum-exps."""
    rows = positive.any(1)
    if not rows.any():
        return logits.sum() * 0
    logits, positive = logits[rows], positive[rows]
    negative = ~positive
    both = negative.any(1)
    loss = logits.new_zeros(len(logits))  # a row without negatives: log(1 + 0)
    if both.any():
        s, p = logits[both], positive[both]
        pairs = torch.logsumexp(s.masked_fill(p, float("-inf")), 1) + torch.logsumexp((-s).masked_fill(~p, float("-inf")), 1)
        loss = loss.index_put((torch.nonzero(both).flatten(),), F.softplus(pairs))
    return loss.mean()


def margin_l2_loss(cosine: torch.Tensor, positive: torch.Tensor, neg_pos_ub: int = 3, pos_margin: float = 0.0,
                   neg_margin: float = 0.1) -> torch.Tensor:
    """L2 between cosines and 1 (positives) / 0 (negatives), after the margins: a positive's cosine
    less ``pos_margin``, a negative's less ``neg_margin``, clipped to [0, 1]; only the
    ``neg_pos_ub`` x (number of positives) negatives of largest loss count (all of them when fewer).
    Mean over the pairs counted; 0 without a positive."""
    target = positive.to(cosine.dtype)
    pred = (cosine - torch.where(positive, pos_margin, neg_margin)).clamp(0, 1)
    cost = (pred - target) ** 2
    n_pos = int(positive.sum())
    if n_pos == 0:
        return cosine.sum() * 0
    neg_cost = cost[~positive]
    if len(neg_cost) > neg_pos_ub * n_pos:
        neg_cost = neg_cost.topk(neg_pos_ub * n_pos).values
    return torch.cat([cost[positive], neg_cost]).mean()


def pair_loss(key: torch.Tensor, key_ids: torch.Tensor, ref: torch.Tensor, ref_ids: torch.Tensor,
              weights: tuple[float, float] = (0.25, 1.0), neg_pos_ub: int = 3) -> dict:
    """The two losses of key RoIs (embeddings, ids; only instances' RoIs act as keys) against every
    RoI of the reference frame, weighted as QDTrack (0.25 x cross-entropy, 1.0 x L2)."""
    anchors = key_ids >= 0
    key, key_ids = key[anchors], key_ids[anchors]
    positive = (key_ids[:, None] == ref_ids[None, :]) & (ref_ids[None, :] >= 0)
    ce = multi_positive_cross_entropy(key @ ref.T, positive)
    l2 = margin_l2_loss(F.normalize(key, dim=1) @ F.normalize(ref, dim=1).T, positive, neg_pos_ub)
    return {"loss_track": weights[0] * ce, "loss_track_aux": weights[1] * l2}
