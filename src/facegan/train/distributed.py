"""Device selection and multi-GPU data parallelism (torchrun).

``torchrun --nproc_per_node N -m facegan.cli train CONFIG`` sets WORLD_SIZE/RANK/LOCAL_RANK; each
rank then trains on its own shard of the sample stream and gradients are averaged with one
all-reduce per optimizer step (:func:`allreduce_grads`), which works for GAN updates with any
number of forward passes (no DistributedDataParallel bookkeeping of unused parameters). Only rank 0
writes checkpoints, samples and logs. On CPU the gloo backend is used (tests run world size 2).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    dev = torch.device(name)
    if dev.type == "cuda":  # pragma: no cover - no GPU in CI
        if not torch.cuda.is_available():
            from ..errors import ConfigError

            raise ConfigError("device cuda requested but CUDA is not available")
        torch.cuda.set_device(dev)
    return dev


def init(device: str = "auto") -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = pick_device(device, local)
    here = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        here = True
    return DistInfo(rank, world, local, dev, here)


def allreduce_grads(params, world: int) -> None:
    """Averages gradients across ranks in one flat buffer (params without a grad are skipped; every
    rank runs the same code path, so the same params have grads everywhere)."""
    if world <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    off = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[off:off + n].view_as(g))
        off += n


def broadcast_module(module: torch.nn.Module, world: int) -> None:
    """Makes every rank start from rank 0's weights and buffers."""
    if world <= 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, 0)


def barrier(world: int) -> None:
    if world > 1 and dist.is_initialized():
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()
