"""The training engine shared by every task: one loop, exact resume, DDP, AMP, logging.

A task gives ``build_model(cfg)``, ``train_dataset(cfg)`` (items with ``video_of_item``, a
``collate`` and ``set_epoch``) and ``loss(model, batch, device)``. Checkpoints are a folder per
iteration with ``model.safetensors`` and ``state.pt`` (optimizer, scheduler, position, RNG),
written under a temporary name and renamed, then pointed to by ``checkpoints/latest``.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file
from torch import nn

from ..data.types import atomic_path, atomic_write
from ..progress import Progress
from .config import Config, config_dict
from .runs import claim_run_folder, newest_readable_checkpoint, run_lock


# distributed ---------------------------------------------------------------------------------
def init_distributed(device: str) -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("run.device=cuda but no CUDA device is available")
    return name


class VideoShardSampler(torch.utils.data.Sampler):
    """Items grouped by video; each epoch the videos are shuffled (seed, epoch) and dealt to the
    ranks round-robin, then each rank's items are shuffled. Every rank gets the same number of
    items (the shortest ranks repeat their first items) so DDP steps stay in lockstep.

    A torch ``Sampler`` of batches (``batch_size`` items each, the last one shorter) that can
    start mid-epoch: ``set_epoch(epoch, start=b)`` skips the first b batches (exact resume)."""

    def __init__(self, video_of_item: list[int], rank: int, world: int, seed: int, shuffle: bool = True,
                 batch_size: int = 1):
        self.video_of_item, self.rank, self.world, self.seed, self.shuffle = video_of_item, rank, world, seed, shuffle
        self.batch_size, self.epoch, self.start = batch_size, 0, 0
        self._cached: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def batches(self, epoch: int) -> list[list[int]]:
        """The epoch's batches (dealt once per epoch and kept)."""
        if self._cached is None or self._cached[0] != epoch:
            order = self.indices(epoch)
            self._cached = (epoch, [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)])
        return self._cached[1]

    def __iter__(self):
        yield from self.batches(self.epoch)[self.start:]

    def __len__(self) -> int:
        return max(0, len(self.batches(self.epoch)) - self.start)

    def indices(self, epoch: int) -> list[int]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        videos = sorted(set(self.video_of_item))
        if self.shuffle:
            rng.shuffle(videos)
        shards = [set(videos[r::self.world]) for r in range(self.world)]
        per_rank = [[i for i, v in enumerate(self.video_of_item) if v in shard] for shard in shards]
        for items in per_rank:
            if self.shuffle:
                rng.shuffle(items)
        length = max(len(items) for items in per_rank)
        mine = per_rank[self.rank] or list(range(len(self.video_of_item)))
        return [mine[i % len(mine)] for i in range(length)]


# optimisation --------------------------------------------------------------------------------
NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups as released: no weight decay on norm layers and relative-position tables."""
    exempt = {id(p) for m in model.modules() if isinstance(m, NORMS) for p in m.parameters(recurse=False)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in exempt or "relative_position_bias_table" in name or "absolute_pos_embed" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(iteration: int, iters_per_epoch: int, cfg) -> float:
    """Warm-up (linear from warmup_ratio) then step decay at epochs or cosine to zero."""
    epoch = iteration / max(1, iters_per_epoch)
    if cfg.schedule == "step":
        factor = cfg.gamma ** sum(epoch >= s for s in cfg.steps)
    else:
        factor = 0.5 * (1 + math.cos(math.pi * min(1.0, iteration / max(1, cfg.epochs * iters_per_epoch))))
    if iteration < cfg.warmup_iters:
        factor *= cfg.warmup_ratio + (1 - cfg.warmup_ratio) * iteration / cfg.warmup_iters
    return factor


# checkpoints ---------------------------------------------------------------------------------
def save_checkpoint(out: Path, model: nn.Module, optimizer, scheduler, position: dict, keep: int) -> Path:
    ckpts = out / "checkpoints"
    name = f"iter_{position['iteration']:08d}"
    tmp = ckpts / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "position": position,
                "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
               tmp / "state.pt")
    final = ckpts / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    atomic_write(ckpts / "latest", name)
    for old in sorted(p for p in ckpts.glob("iter_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(out: Path) -> Path | None:
    pointer = out / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = out / "checkpoints" / pointer.read_text().strip()
    return path if (path / "state.pt").is_file() else None


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# the loop ------------------------------------------------------------------------------------
def train(cfg: Config, task, resume: str | None = None, max_iterations: int | None = None,
          console=None, overwrite: bool = False) -> Path:
    """Train ``task`` under ``cfg``; returns the run folder. ``resume``: 'auto' continues from
    the run's latest readable checkpoint (exactly: same weights as an uninterrupted run), a path
    resumes from that checkpoint folder. A folder holding another run is refused unless
    ``overwrite`` (see ``claim_run_folder``); a lock keeps a second training out.
    ``max_iterations`` stops early (tests, interruption drills)."""
    out = Path(cfg.run.out)
    if int(os.environ.get("RANK", "0")) != 0:
        return _train(cfg, task, resume, max_iterations, console, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):
        try:
            return _train(cfg, task, resume, max_iterations, console, overwrite)
        except KeyboardInterrupt:
            last = latest_checkpoint(out)
            print(f"interrupted; {f'the last checkpoint, {last}, is intact' if last else 'no checkpoint was written yet'}"
                  f"{': continue with --resume auto' if last else ''}")
            raise


@dataclass
class _Run:
    """Everything one training holds while it runs (``_set_up`` builds it)."""

    cfg: Config
    task: object
    device: str
    rank: int
    world: int
    out: Path
    model: nn.Module
    dataset: object
    sampler: VideoShardSampler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    iters_per_epoch: int
    position: dict = field(default_factory=lambda: {"epoch": 0, "iteration": 0, "epoch_iteration": 0})
    scaler: object = None
    autocast: object = None
    loader: object = None

    def checkpoint(self) -> None:
        if self.rank == 0:
            save_checkpoint(self.out, self.model, self.optimizer, self.scheduler, self.position,
                            self.cfg.run.keep_checkpoints)


def _set_up(cfg: Config, task, resume, overwrite) -> tuple[_Run, Path | None]:
    """The run folder claimed (and the checkpoint to resume from, if any), seeds set, the model,
    data, sampler, optimizer and schedule built."""
    device = resolve_device(cfg.run.device)
    rank, world = init_distributed(device)
    out = Path(cfg.run.out)
    ckpt = claim_run_folder(out, config_dict(cfg), resume, overwrite) if rank == 0 else \
        (newest_readable_checkpoint(out) if resume == "auto" else (Path(resume) if resume else None))
    if rank == 0:
        atomic_write(out / "config.json", json.dumps(config_dict(cfg), indent=1))
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    random.seed(cfg.run.seed)
    model = task.build_model(cfg).to(device)
    dataset = task.train_dataset(cfg)
    sampler = VideoShardSampler(dataset.video_of_item, rank, world, cfg.run.seed, batch_size=cfg.optim.batch_size)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr)
    iters_per_epoch = math.ceil(len(sampler.batches(0)) / cfg.optim.accumulate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, iters_per_epoch, cfg.optim))
    return _Run(cfg, task, device, rank, world, out, model, dataset, sampler, optimizer, scheduler, iters_per_epoch), ckpt


def _resume(run: _Run, ckpt: Path) -> None:
    """Weights, optimizer, schedule, position and random states from a checkpoint folder."""
    if not (ckpt / "state.pt").is_file():
        raise FileNotFoundError(f"not a checkpoint folder (no state.pt): {ckpt}")
    run.model.load_state_dict(load_file(str(ckpt / "model.safetensors"), device=run.device))
    state = torch.load(ckpt / "state.pt", weights_only=True, map_location="cpu")
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.position = dict(state["position"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def _prepare(run: _Run) -> None:
    """DDP wrapping, mixed precision and the DataLoader, after the weights are in place."""
    cfg, device = run.cfg, run.device
    if run.world > 1:
        run.model = nn.parallel.DistributedDataParallel(
            run.model, device_ids=[torch.cuda.current_device()] if device == "cuda" else None)
    if cfg.optim.amp == "fp16" and device != "cuda":
        raise ValueError("optim.amp=fp16 needs a GPU; use bf16 on the CPU")
    run.scaler = torch.amp.GradScaler("cuda") if cfg.optim.amp == "fp16" else None
    run.autocast = (torch.autocast(device, dtype=torch.bfloat16) if cfg.optim.amp == "bf16" else
                    torch.autocast(device, dtype=torch.float16) if cfg.optim.amp == "fp16" else nullcontext())
    # its own generator: a new iterator draws a seed from it, and drawing from the global one would
    # shift the training's random stream by one draw wherever a run resumes
    run.loader = torch.utils.data.DataLoader(run.dataset, batch_sampler=run.sampler, collate_fn=run.dataset.collate,
                                             num_workers=cfg.run.num_workers, pin_memory=device == "cuda",
                                             generator=torch.Generator().manual_seed(cfg.run.seed))


def _step(run: _Run, batches, group: list[int]) -> dict:
    """One optimizer step over the batches of ``group`` (gradient accumulation); its log record."""
    cfg, optimizer, scaler = run.cfg, run.optimizer, run.scaler
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    logged: dict[str, float] = {}
    for _ in group:
        batch = next(batches)
        with run.autocast:
            losses = run.task.loss(run.model, batch, run.device)
            loss = sum(losses.values()) / len(group)
        (scaler.scale(loss) if scaler else loss).backward()
        for k, v in losses.items():
            logged[k] = logged.get(k, 0.0) + float(v.detach()) / len(group)
    if not all(math.isfinite(v) for v in logged.values()):
        raise FloatingPointError(f"non-finite loss at iteration {run.position['iteration']}: {logged}")
    if scaler:
        scaler.unscale_(optimizer)
    if cfg.optim.clip_grad:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.optim.clip_grad)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    run.scheduler.step()
    run.position["iteration"] += 1
    seconds = time.perf_counter() - start
    return {"iteration": run.position["iteration"], "epoch": run.position["epoch"],
            "loss": sum(logged.values()), **logged, "lr": optimizer.param_groups[0]["lr"],
            "images_per_s": cfg.optim.batch_size * len(group) * run.world / seconds}


def _finish(run: _Run) -> None:
    """The last checkpoint and ``model.safetensors``; with several ranks, each rank's weights
    summarised in ``ranks.json`` so that a run can show its ranks agree."""
    if run.rank == 0:
        run.checkpoint()
        with atomic_path(run.out / "model.safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in unwrap(run.model).state_dict().items()}, str(tmp))
    if run.world > 1:
        flat = torch.cat([p.detach().double().flatten().cpu() for p in unwrap(run.model).parameters()])
        mine = torch.tensor([flat.sum().item(), flat.abs().sum().item(), (flat * torch.arange(len(flat))).sum().item()],
                            dtype=torch.float64)
        gathered = [torch.zeros_like(mine) for _ in range(run.world)]
        dist.all_gather(gathered, mine)
        if run.rank == 0:
            atomic_write(run.out / "ranks.json", json.dumps({"checksums": [g.tolist() for g in gathered]}))
        dist.barrier()
        dist.destroy_process_group()


def _train(cfg: Config, task, resume, max_iterations, console, overwrite) -> Path:
    run, ckpt = _set_up(cfg, task, resume, overwrite)
    if ckpt is not None:
        _resume(run, ckpt)
    _prepare(run)
    position, out = run.position, run.out
    log = (out / "log.jsonl").open("a") if run.rank == 0 else None
    progress = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, disable=run.rank != 0)
    run.model.train()
    try:
        with progress:
            bar = progress.add_task("train", total=cfg.optim.epochs * run.iters_per_epoch,
                                    completed=position["iteration"], info="")
            while position["epoch"] < cfg.optim.epochs:
                run.dataset.set_epoch(position["epoch"])  # before the loader's workers copy the dataset
                acc = cfg.optim.accumulate
                num_batches = len(run.sampler.batches(position["epoch"]))
                groups = [list(range(i, min(i + acc, num_batches))) for i in range(0, num_batches, acc)]
                run.sampler.set_epoch(position["epoch"], start=position["epoch_iteration"] * acc)
                batches = iter(run.loader)
                for g in range(position["epoch_iteration"], len(groups)):
                    if max_iterations is not None and position["iteration"] >= max_iterations:
                        break
                    record = _step(run, batches, groups[g])
                    position["epoch_iteration"] = g + 1
                    if log and (position["iteration"] % cfg.run.log_every == 0 or position["iteration"] == 1):
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                    progress.update(bar, advance=1, info=f"loss {record['loss']:.3f} lr {record['lr']:.2e} "
                                                         f"{record['images_per_s']:.1f} img/s")
                    if position["iteration"] % cfg.run.checkpoint_every == 0:
                        run.checkpoint()
                else:
                    position["epoch"] += 1
                    position["epoch_iteration"] = 0
                    run.checkpoint()
                    continue
                break  # max_iterations reached
        _finish(run)
    finally:
        if log:
            log.close()
    return out
