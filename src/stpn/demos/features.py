"""The main job until the detection pipeline lands: feature extraction on a generated clip.

A textured square moves over a noisy background; every fourth frame is motion-blurred. The
clip runs through the single-frame baseline (prompts off), STPN with the released offline
protocol (global K=14, prompts once per video) and STPN online (causal stream); the table shows
per-frame cost against the baseline, the unprompted passes and predictor calls each mode paid
for, and that the stream reproduces the offline batch computation. The weights are random
unless --pretrained: this run measures the mechanism, not accuracy.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from ..core import STPN, causal_support
from ..data.types import write_json
from ..progress import track

TINY = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=4)


def generated_clip(frames: int, size: int, seed: int = 0) -> tuple[torch.Tensor, list[int]]:
    """(T, 3, size, size) normalised clip and the indices of its blurred frames."""
    g = torch.Generator().manual_seed(seed)
    background = torch.rand(3, size, size, generator=g) * 0.3
    side = size // 4
    texture = (torch.rand(3, side // 4, side // 4, generator=g) > 0.5).float()
    texture = F.interpolate(texture[None], size=(side, side), mode="nearest")[0]
    clip, blurred = [], []
    for t in range(frames):
        img = background.clone()
        x = int((size - side) * (0.5 + 0.45 * torch.sin(torch.tensor(t / 5.0)).item()))
        y = (size - side) // 2
        img[:, y:y + side, x:x + side] = texture
        if t % 4 == 3:  # horizontal motion blur over 15 px
            kernel = torch.full((3, 1, 1, 15), 1 / 15)
            img = F.conv2d(F.pad(img[None], (7, 7, 0, 0), mode="replicate"), kernel, groups=3)[0]
            blurred.append(t)
        clip.append((img - 0.45) / 0.25)
    return torch.stack(clip), blurred


def run_demo(out: Path, frames: int = 24, size: int = 224, tiny: bool = False, pretrained: bool = False,
             console: Console | None = None) -> dict:
    console = console or Console(width=100)
    torch.manual_seed(0)
    kwargs = dict(backbone_kwargs=TINY, predictor_kwargs=dict(num_groups=4)) if tiny else {}
    name = "swin_tiny_patch4_window7_224"
    model = STPN(name, predictor="attention", num_prompts=5, pretrained=pretrained, **kwargs).eval()
    baseline = STPN(name, prompting=False, **kwargs).eval()
    baseline.backbone.load_state_dict(model.backbone.state_dict())
    clip, blurred = generated_clip(frames, size)
    results = {}
    with torch.no_grad():
        model(clip[:1], clip[None, :2]), baseline(clip[:1])  # warm-up, not timed
        start = time.perf_counter()
        for t in track(range(frames), "baseline   ", console=console):
            baseline(clip[t:t + 1])
        results["baseline"] = (time.perf_counter() - start) / frames
        start = time.perf_counter()
        state = model.new_stream("global", num_support=14, video=clip)
        for t in track(range(frames), "STPN global", console=console):
            model.step(clip[t], state)
        results["global"] = (time.perf_counter() - start) / frames
        work = {"global": (state.embedded, state.refreshes)}
        start = time.perf_counter()
        state = model.new_stream("causal", num_support=4, stride=4, refresh_every=4)
        causal_feats = [model.step(clip[t], state)[0][-1] for t in track(range(frames), "STPN causal", console=console)]
        results["causal"] = (time.perf_counter() - start) / frames
        work["causal"] = (state.embedded, state.refreshes)
        # the stream against the batch computation of the same frames and supports
        diff = 0.0
        for t in range(frames):
            index = causal_support((t // 4) * 4, frames, 4, 4)
            offline = model(clip[t:t + 1], clip[index][None])[-1]
            diff = max(diff, (offline - causal_feats[t]).abs().max().item())

    report = {
        "backbone": name if not tiny else f"{name} (tiny: {TINY})",
        "pretrained": pretrained, "frames": frames, "size": size, "blurred_frames": blurred,
        "ms_per_frame": {k: v * 1e3 for k, v in results.items()},
        "ratio_to_baseline": {k: v / results["baseline"] for k, v in results.items()},
        "unprompted_passes": {k: v[0] for k, v in work.items()},
        "predictor_calls": {k: v[1] for k, v in work.items()},
        "stream_vs_offline_max_abs_diff": diff,
        "stage_shapes": [list(f.shape) for f in model(clip[:1], clip[None, :2])],
    }
    table = Table(title=f"stpn: {frames} generated frames at {size}x{size}, "
                        f"{'tiny Swin' if tiny else 'Swin-T'}, {'pretrained' if pretrained else 'random init'}")
    for col in ("mode", "ms/frame", "x base", "unprompted passes", "prompt refreshes"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    table.add_row("baseline (1 frame)", f"{results['baseline'] * 1e3:.1f}", "1.00", "0", "0")
    for mode, label in (("global", "global K=14"), ("causal", "causal K=4 S=4 N=4")):
        table.add_row(label, f"{results[mode] * 1e3:.1f}", f"{report['ratio_to_baseline'][mode]:.2f}",
                      str(work[mode][0]), str(work[mode][1]))
    console.print(table)
    console.print(f"stage maps: {report['stage_shapes']}")
    console.print(f"causal stream vs offline batch computation: max |diff| = {diff:.2e}")
    write_json(out / "report.json", report, indent=2)
    console.print(f"wrote {out / 'report.json'}")
    return report
