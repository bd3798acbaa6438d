"""Correctness on a GPU: the same models give the same numbers on CUDA as on the CPU.

    python benchmarks/gpu_check.py            # needs a CUDA device; prints a table, exits 1 on a failure

Checks (random weights, fresh random inputs, float32 with TF32 off unless the row says bf16):
the prompted and the plain Swin-T (576x1008) and ViT-B (224) on CUDA vs the CPU (relative error
||a-b||/||b||), bf16 autocast vs float32, ``torch.compile`` vs eager on CUDA, and the
detector and the tracker run end to end on CUDA with the same outputs as on the CPU.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from _timing import device_name
from stpn import STPN
from stpn.data.synth import SynthConfig, synth_video
from stpn.detection.build import build_detector
from stpn.detection.inference import predict_video
from stpn.engine.config import load_config, packaged_config
from stpn.tracking.model import STPNTracker
from stpn.tracking.tracker import start, step


def rel(a, b) -> float:
    a, b = [torch.cat([t.float().flatten().cpu() for t in (x if isinstance(x, (list, tuple)) else [x])]) for x in (a, b)]
    return float((a - b).norm() / b.norm())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself (CPU vs CPU)")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    rows = []  # (check, value, limit)
    with torch.no_grad():
        for name, size in (("swin_tiny_patch4_window7_224", (576, 1008)), ("vit_base_patch16_224", (224, 224))):
            model = STPN(name).eval()
            x, sup = torch.randn(1, 3, *size), torch.randn(1, 2, 3, *size)
            cpu = model(x, sup)
            plain_cpu = model.backbone(x)
            model.to(dev)
            xc, supc = x.to(dev), sup.to(dev)
            gpu = model(xc, supc)
            rows.append((f"{name} {size[0]}x{size[1]}, prompted: CUDA vs CPU", rel(gpu, cpu), 1e-4))
            rows.append((f"{name}, plain: CUDA vs CPU", rel(model.backbone(xc), plain_cpu), 1e-4))
            with torch.autocast(torch.device(dev).type, dtype=torch.bfloat16):
                half = model(xc, supc)
            rows.append((f"{name}, prompted: bf16 autocast vs fp32", rel(half, gpu), 3e-2))
            if not args.no_compile:
                compiled = torch.compile(model, fullgraph=True)
                rows.append((f"{name}, prompted: torch.compile vs eager (CUDA)", rel(compiled(xc, supc), gpu), 1e-4))
            del model
        # detector end to end: the demo config's tiny detector, a generated video, global mode
        cfg = load_config(packaged_config("demo_cpu"))
        det = build_detector(cfg).eval()
        video, _, _ = synth_video(SynthConfig(videos=1, frames=6, width=160, height=120), 0)
        det.roi_heads.score_thresh = 0.0
        cpu = list(predict_video(det, video, "global", 4, 1, 1))
        det.to(dev)
        gpu = list(predict_video(det, video, "global", 4, 1, 1, device=dev))
        # random weights: near-tied scores can reorder, so the features are compared, counts reported
        equal = sum(len(a["boxes"]) == len(b["boxes"]) and np.allclose(a["boxes"], b["boxes"], atol=1e-2)
                    for a, b in zip(cpu, gpu))
        rows.append((f"detector, global K=4: frames with equal boxes (of {len(cpu)}; info)", float(equal), None))
        image = torch.rand(1, 3, 120, 160)
        support = torch.rand(1, 4, 3, 120, 160)
        feats = det.backbone(image.to(dev), support.to(dev))
        det.cpu()
        rows.append(("detector: FPN features, CUDA vs CPU", rel(list(feats.values()), list(det.backbone(image, support).values())), 1e-4))
        # tracker end to end: ViT-Tiny, a generated sequence, causal support stream
        video, _, _ = synth_video(SynthConfig(videos=1, frames=12, width=320, height=240, max_objects=1), 1)
        x1, y1, x2, y2 = video.targets[0].boxes[0]
        tracker = STPNTracker("vit_tiny_patch16_224").eval()
        boxes = {}
        for device in ("cpu", dev):
            tracker.to(device)
            state = start(tracker, video.frames[0], [x1, y1, x2 - x1, y2 - y1], 2, 2, 2, device)
            boxes[device] = np.stack([step(tracker, video.frames[t], state)[0] for t in range(1, len(video))])
        rows.append(("tracker K=2: max |box CUDA - box CPU| over 11 frames (px; info: argmax ties)",
                     float(np.abs(boxes[dev] - boxes["cpu"]).max()), None))
        tokens, search, support = torch.randn(1, 65, 192), torch.randn(1, 3, 256, 256), torch.randn(1, 2, 3, 256, 256)
        out = tracker.head_forward(tokens.to(dev), search.to(dev), tracker.prompts(support.to(dev)))
        tracker.cpu()
        ref = tracker.head_forward(tokens, search, tracker.prompts(support))
        rows.append(("tracker: head outputs, CUDA vs CPU", rel(list(out.values()), list(ref.values())), 1e-4))
    table = Table(title=f"GPU correctness, {device_name(dev)}")
    for col in ("check", "value", "limit", "ok"):
        table.add_column(col, justify="left" if col == "check" else "right")
    failed = 0
    for check, value, limit in rows:
        ok = limit is None or value <= limit
        failed += not ok
        table.add_row(check, f"{value:.2e}", "" if limit is None else f"{limit:.0e}", "yes" if ok else "NO")
    Console(width=130).print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
