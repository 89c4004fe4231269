"""Several processes under ``torchrun``: detection, process group, small collectives.

``torchrun --nproc_per_node=N`` (and multi-node torchrun) sets ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK``; a plain ``python`` run has none of them and is one process. With
several processes the backend is NCCL on CUDA and gloo elsewhere, each process uses
``cuda:LOCAL_RANK``, and rank 0 alone writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from idresnet.errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this code created the process group (and destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def from_env() -> DistInfo:
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise UsageError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    return DistInfo(rank, world, local)


def init(device_type: str) -> DistInfo:
    """Join the process group that torchrun describes (nothing for one process)."""
    dist = from_env()
    if not dist.active:
        return dist
    if torch_dist.is_initialized():  # the caller made one: use it, leave it
        return DistInfo(torch_dist.get_rank(), torch_dist.get_world_size(), dist.local_rank, False)
    if device_type == "cuda":
        torch.cuda.set_device(dist.local_rank)
    torch_dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.rank, dist.world_size, dist.local_rank, True)


def close(dist: DistInfo, barrier: bool = True) -> None:
    """Leave the process group; the barrier first lets every rank finish its last
    collective, so that no rank tears gloo down under another's feet (a SIGABRT).
    ``barrier=False`` after an error: a rank that failed alone (a damaged batch, an
    exception in its step) must not wait for ranks that wait for it; it exits and
    torchrun stops the others."""
    if dist.owns_group and torch_dist.is_initialized():
        try:
            if barrier:
                torch_dist.barrier()
        finally:
            torch_dist.destroy_process_group()


def broadcast(obj, dist: DistInfo):
    """Rank 0's ``obj`` on every rank (any picklable object)."""
    if not dist.active:
        return obj
    box = [obj]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj, dist: DistInfo) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not dist.active:
        return [obj]
    out = [None] * dist.world_size
    torch_dist.all_gather_object(out, obj)
    return out


def all_reduce_(tensor: torch.Tensor, dist: DistInfo, op=None) -> torch.Tensor:
    """Sum (or ``op``) ``tensor`` over the ranks, in place."""
    if dist.active:
        torch_dist.all_reduce(tensor, op=op or torch_dist.ReduceOp.SUM)
    return tensor


def barrier(dist: DistInfo) -> None:
    if dist.active:
        torch_dist.barrier()
