"""Cost of prompting, as ratios against the plain backbone measured in the same run.

    python benchmarks/overhead.py            # Swin-T, 224, 448 and 576x1008 (batch 1 and 4), K=4/14 streams
    python benchmarks/overhead.py --tiny     # a 32-dim Swin, seconds (smoke run)
    python benchmarks/overhead.py --device cuda --json overhead_gpu.json

Every ratio divides by the plain backbone (our forward with prompts=None, which equals timm's)
timed alternately with the measured variant. Rows: timm's own Swin forward, the prompted
forward (N_P=5), the whole method on a clip of 1+K frames (support pass, predictor, prompted
pass) against the plain backbone on the same 1+K frames, each predictor on K=14 support frames, and causal streams (per-frame cost in steady state,
averaged over whole refresh cycles), plus the offline global protocol amortised over a video.
Beside every time ratio, the FLOP ratio of the same two calls (``torch.utils.flop_counter.
FlopCounterMode``: matrix products, convolutions and attention), the limit a ratio could reach
if time followed arithmetic.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics

import torch
from rich.console import Console
from rich.table import Table

import stpn.core.swin as swin
from _timing import default_device, device_name, now
from stpn import STPN
from stpn.core.predictors import build_predictor

TINY = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=4)


def count_flops(fn) -> int:
    """FLOPs of one call of fn (it also serves as the warm-up call)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, torch.compiler.set_stance("force_eager"):
        fn()  # compiled modules run eagerly here: the same arithmetic, visible to the counter
    return counter.get_total_flops()


DEVICE = "cpu"  # set by main


def paired(baseline, fn, repeats: int) -> tuple[float, float, int, int]:
    """Median seconds of fn() and of baseline(), timed alternately so that both see the same
    machine load, and the FLOPs of one call of each (counted in the warm-up calls)."""
    flops_base, flops = count_flops(baseline), count_flops(fn)
    baseline(), fn()  # warm-up (and compilation, with --compile)
    base, times = [], []
    for _ in range(repeats):
        for fun, out in ((baseline, base), (fn, times)):
            start = now(DEVICE)
            fun()
            out.append(now(DEVICE) - start)
    return statistics.median(times), statistics.median(base), flops, flops_base


def parse_size(text: str) -> tuple[int, int]:
    """'224' -> (224, 224); '576x1008' -> (576, 1008) as height x width."""
    h, _, w = text.partition("x")
    return int(h), int(w or h)


def stream_cost(model, frame, num_support, stride, refresh, cycles):
    """Per-frame seconds of a causal stream in steady state and of the plain backbone.

    The stream runs in chunks of whole refresh cycles (lcm of stride and refresh period), each
    timed right after the plain backbone runs the same number of frames.
    """
    state = model.new_stream("causal", num_support=num_support, stride=stride, refresh_every=refresh)
    period = math.lcm(stride, refresh)
    for _ in range(num_support * stride + period):  # fill the cache: steady state
        _, state = model.step(frame, state)
    x = frame[None]

    def chunk():
        nonlocal state
        for _ in range(period):
            _, state = model.step(frame, state)

    def plain():
        for _ in range(period):
            model.backbone(x)

    stream, base, flops, flops_base = paired(plain, chunk, cycles)
    return stream / period, base / period, flops / period, flops_base / period


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="32-dim Swin at 128/256 px (smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="forward rows: batch sizes")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--forward-only", action="store_true", help="only the forward rows (e.g. a short GPU run)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone (plain and prompted "
                        "calls alike; the timm reference row stays eager)")
    parser.add_argument("--sizes", nargs="+", help="forward sizes, HxW or one side "
                        "(default 224 448 576x1008; --tiny: 128 256); streams run at the first")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    torch.manual_seed(0)
    kwargs = dict(backbone_kwargs=TINY, predictor_kwargs=dict(num_groups=4)) if args.tiny else {}
    sizes = [parse_size(s) for s in (args.sizes or (("128", "256") if args.tiny else ("224", "448", "576x1008")))]
    # no parameter needs a gradient: FlopCounterMode's module tracker trips on parameters that do under no_grad
    model = STPN("swin_tiny_patch4_window7_224", predictor="attention", num_prompts=5, **kwargs).eval().requires_grad_(False).to(DEVICE)
    backbone = model.backbone
    if args.compile:  # one graph per input shape (sizes, batch 1 and 1+K, plain and prompted)
        torch._dynamo.config.recompile_limit = 64
        backbone.compile(dynamic=False)
    D, dL = backbone.embed_dim, backbone.dims[-1]
    rows = []  # (group, name, seconds, baseline seconds, flops, baseline flops)
    with torch.no_grad():
        for (h, w), batch in [(s, b) for s in sizes for b in args.batches]:
            x = torch.randn(batch, 3, h, w, device=DEVICE)
            prompts = torch.randn(batch, 5, D, device=DEVICE)
            group = f"forward {h}x{w}, batch {batch}"
            if batch == args.batches[0]:
                timm_row = paired(lambda: backbone(x), lambda: backbone.body.forward_intermediates(
                    x, intermediates_only=True), args.repeats)
                rows.append((group, "timm Swin (reference)", *timm_row))
            prompted_row = paired(lambda: backbone(x), lambda: backbone(x, prompts), args.repeats)
            rows.append((group, "prompted, N_P=5", *prompted_row))
            swin.PROMPT_ATTENTION = "split"  # the exact formula without copies (the default copies, measured faster)
            try:
                rows.append((group, "prompted, split (no copies)", *paired(lambda: backbone(x),
                                                                          lambda: backbone(x, prompts), args.repeats)))
            finally:
                swin.PROMPT_ATTENTION = "auto"
            print(f"{h}x{w} x{batch}: plain {prompted_row[1] * 1e3:.2f} ms, prompted {prompted_row[0] * 1e3:.2f} ms "
                  f"({prompted_row[0] / prompted_row[1]:.3f}x; split {rows[-1][2] / rows[-1][3]:.3f}x)", flush=True)
        h, w = sizes[0]
        size = f"{h}x{w}"
        if not args.forward_only:  # the method's rows at the first size
            x = torch.randn(1, 3, h, w, device=DEVICE)
            grid = (math.ceil(h / backbone.strides[-1]), math.ceil(w / backbone.strides[-1]))
            tokens = torch.randn(1, 14, grid[0] * grid[1], dL, device=DEVICE)
            for K in (2, 14):  # the whole method on a clip: support pass + predictor + prompted pass
                clip = torch.randn(1 + K, 3, h, w, device=DEVICE)
                row = paired(lambda: backbone(clip), lambda: model(clip[:1], clip[None, 1:]), args.repeats)
                rows.append((f"STPN on 1+K frames at {size}", f"K={K} (plain: the same 1+K frames)", *row))
            for name in ("attention", "topk_mean", "mixer", "decoder"):
                extra = dict(num_groups=4) if (args.tiny and name == "attention") else {}
                pred = build_predictor(name, dL, D, 5, **extra).eval().requires_grad_(False).to(DEVICE)
                row = paired(lambda: backbone(x), lambda: pred(tokens, grid_size=grid), args.repeats)
                rows.append((f"predictor, K=14 at {size}", name, *row))
            frame = torch.randn(3, h, w, device=DEVICE)
            cycles = 2 if args.tiny else max(3, args.repeats)
            for K, S, N in ((4, 8, 8), (14, 8, 8), (4, 2, 8), (4, 1, 8), (14, 1, 8), (4, 1, 1)):
                row = stream_cost(model, frame, K, S, N, cycles)
                rows.append((f"causal stream at {size}", f"K={K} S={S} refresh every {N}", *row))
            video = torch.randn(14, 3, h, w, device=DEVICE)
            def global_prompts():  # the support pass and the predictor, once per video
                stream = model.new_stream("global", num_support=14, video=video)
                return stream.prompts_at(model, 0, lambda i: video[i][None])

            once, _, once_flops, _ = paired(lambda: [backbone(x) for _ in range(14)], global_prompts, 1)
            prompted, plain, flops, flops_plain = paired(lambda: backbone(x), lambda: backbone(x, torch.randn(1, 5, D, device=DEVICE)),
                                                         args.repeats)
            for length in (100, 300):
                rows.append((f"global K=14 at {size}", f"amortised over {length} frames",
                             prompted + once / length, plain, flops + once_flops / length, flops_plain))

    table = Table(title=f"STPN overhead ({'tiny Swin' if args.tiny else 'Swin-T'}, batch 1, "
                        f"{'compiled' if args.compile else 'eager'}, "
                        f"{device_name(DEVICE)})")
    for col in ("measurement", "variant", "ms", "x plain (time)", "x plain (FLOPs)"):
        table.add_column(col, justify="left" if col in ("measurement", "variant") else "right")
    for group, name, seconds, base, flops, flops_base in rows:
        table.add_row(group, name, f"{seconds * 1e3:.1f}", f"{seconds / base:.3f}", f"{flops / flops_base:.3f}")
    Console().print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([dict(measurement=g, variant=n, ms=s * 1e3, ratio=s / b, flop_ratio=fl / fb)
                       for g, n, s, b, fl, fb in rows], f, indent=1)
    return rows


if __name__ == "__main__":
    main()
