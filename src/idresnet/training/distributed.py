"""Several processes under ``torchrun``: detection, process group, small collectives.

``torchrun --nproc_per_node=N`` (and multi-node torchrun) sets ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK``; a plain ``python`` run has none of them and is one process. With
several processes the backend is NCCL on CUDA and gloo elsewhere, each process uses
``cuda:LOCAL_RANK``, and rank 0 alone writes files.

**torchrun's restarts.** ``torchrun --max-restarts N`` relaunches every worker after one
dies, but keeps its TCPStore (the ``env://`` store, ``TORCHELASTIC_USE_AGENT_STORE``)
over the restarts, and the group's keys are the same in every attempt: a relaunched rank
can read the gloo address of a dead worker of the attempt before and fail ("Gloo
connectFullMesh failed ... Connection refused"; pytorch/pytorch#135712, #167288;
benchmarks/README.md, "torchrun restarts"). So the group is formed through
:class:`KeysSet`, which remembers the keys this rank sets; once every rank has joined (a
barrier), each rank deletes them, and a relaunch finds none. A prefix per
``TORCHELASTIC_RESTART_COUNT`` would not do: under the c10d rendezvous with several nodes
a node relaunched for another node's failure does not count it (pytorch/pytorch#108158).
The group must form within ``$IDRESNET_GROUP_TIMEOUT`` seconds (default 300); if it does
not (a rank died while the group formed and left its address behind), every rank ends
with one line that says why and what to do (run the command again: a new torchrun, a new
store). Once formed, collectives have torch's default timeout.
"""

from __future__ import annotations

import datetime
import os
import sys
import threading
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from idresnet.errors import UsageError, exception_line

GROUP_TIMEOUT_ENV = "IDRESNET_GROUP_TIMEOUT"
GROUP_TIMEOUT_S = 300.0  # seconds the process group may take to form (every rank started and joined)
DEADLINE_GRACE_S = 10.0  # ... and then torch's own timeout this long to report first
FORMED_KEY = "idresnet/group_formed"  # set in the store once a group formed: a later one is a relaunch
UPSTREAM = "pytorch/pytorch#135712, #167288"


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
    form_group("nccl" if device_type == "cuda" else "gloo", dist)
    return DistInfo(dist.rank, dist.world_size, dist.local_rank, True)


def group_timeout() -> float:
    """Seconds the process group may take to form: ``$IDRESNET_GROUP_TIMEOUT`` or 300."""
    text = os.environ.get(GROUP_TIMEOUT_ENV, "")
    try:
        seconds = float(text) if text else GROUP_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise UsageError(f"{GROUP_TIMEOUT_ENV} must be a number of seconds > 0, not {text!r}")
    return seconds


def form_group(backend: str, dist: DistInfo) -> None:
    """The default process group of torchrun's ``env://`` store, formed so that a relaunch
    by torchrun can form it again (see the module docstring), within :func:`group_timeout`;
    a group that does not form is a one-line UsageError on every rank."""
    seconds = group_timeout()
    timeout = datetime.timedelta(seconds=seconds)
    # torch's own timeouts end most failures at `seconds`, but a connect to a dead address
    # can retry for 5 times as long: past the deadline the process ends from this thread
    deadline = threading.Timer(seconds + DEADLINE_GRACE_S, _give_up, (dist.world_size, seconds))
    deadline.daemon = True
    deadline.start()
    store = keys = None
    try:
        store, _, _ = next(torch_dist.rendezvous("env://", dist.rank, dist.world_size, timeout=timeout))
        keys = KeysSet(torch_dist.PrefixStore("default_pg", store))  # the prefix init_process_group adds
        torch_dist.init_process_group(backend, store=keys, rank=dist.rank, world_size=dist.world_size, timeout=timeout)
        ids = [dist.local_rank] if backend == "nccl" else None
        torch_dist.barrier(device_ids=ids)  # every rank has read every address (NCCL: made its communicator)
    except (RuntimeError, ValueError) as exc:  # torch's DistError is a RuntimeError
        message = not_formed_message(exc, dist.world_size, seconds, _relaunched(store))
        if keys is not None:
            keys.forget()  # this rank's address must not mislead the next attempt either
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
        deadline.cancel()
        raise UsageError(message) from None
    deadline.cancel()
    keys.forget()
    store.set(FORMED_KEY, "1")
    # collectives from here: torch's default timeout
    default = torch_dist.distributed_c10d._get_default_timeout(torch_dist.Backend(backend))
    torch_dist.distributed_c10d._set_pg_timeout(default)
    store.set_timeout(default)


def _give_up(world_size: int, seconds: float) -> None:
    """The group did not form by its deadline (the main thread is blocked in torch): one
    line, then the process ends as the CLI's one-line errors do (status 2)."""
    why = TimeoutError(f"no group within {seconds:g} s")
    relaunched = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0
    print(f"idresnet: error: {not_formed_message(why, world_size, seconds, relaunched)}", file=sys.stderr, flush=True)
    os._exit(2)


def _relaunched(store) -> bool:
    """Whether this worker is a relaunch by torchrun: it counts a restart, or (a node
    relaunched for another node's failure counts none) the store saw a group form before."""
    if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0:
        return True
    try:
        return store is not None and store.check([FORMED_KEY])
    except RuntimeError:
        return False


def not_formed_message(exc: BaseException, world_size: int, seconds: float, relaunched: bool) -> str:
    """The one line of a process group that did not form."""
    why = exception_line(exc, 200)
    if relaunched:
        return (
            f"the process group of torchrun's relaunched workers did not form ({why}): torchrun keeps its "
            f"store over restarts and a relaunch can meet the address of a worker it replaced ({UPSTREAM}); "
            "run the same command again (with --resume auto it continues from the last checkpoint)"
        )
    return (
        f"the process group of {world_size} processes did not form within {seconds:g} s ({why}); every node "
        f"must run the command and reach MASTER_ADDR:MASTER_PORT (more time: {GROUP_TIMEOUT_ENV}=SECONDS)"
    )


class KeysSet(torch_dist.Store):
    """A store that passes every call to ``inner`` and remembers the keys set (or added to)
    through it, so that :meth:`forget` can delete them once they have served."""

    def __init__(self, inner: torch_dist.Store):
        super().__init__()
        self.inner = inner
        self.keys: list[str] = []

    def set(self, key, value):
        self.keys.append(key)
        self.inner.set(key, value)

    def add(self, key, value):
        self.keys.append(key)
        return self.inner.add(key, value)

    def compare_set(self, key, expected, desired):
        self.keys.append(key)
        return self.inner.compare_set(key, expected, desired)

    def get(self, key):
        return self.inner.get(key)

    def wait(self, keys, timeout=None):
        return self.inner.wait(keys) if timeout is None else self.inner.wait(keys, timeout)

    def check(self, keys):
        return self.inner.check(keys)

    def delete_key(self, key):
        return self.inner.delete_key(key)

    def set_timeout(self, timeout):
        self.inner.set_timeout(timeout)

    def forget(self) -> None:
        """Delete the keys set so far (as far as the store still answers)."""
        for key in dict.fromkeys(self.keys):
            try:
                self.inner.delete_key(key)
            except RuntimeError:
                return
        self.keys.clear()


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
