"""Shared by the speed benchmarks: device choice, synchronised clocks, precision contexts."""
from __future__ import annotations

import contextlib
import time

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def now(device) -> float:
    """A host clock read after the device's queued work finished (GPU work is asynchronous)."""
    sync(device)
    return time.perf_counter()


def precision(device, dtype: str):
    """fp32: plain (no TF32 matmuls); bf16/fp16: autocast on the device."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[dtype])


def device_name(device) -> str:
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
