"""How many CPU threads a run uses: ``threads: auto`` (the default) leaves busy cores alone.

On a CPU shared with other jobs, more OpenMP threads than free cores make every parallel
region wait for a thread that is descheduled: measured on a 2-core machine whose cores
both ran a training job, 2 threads instead of 1 made the training steps of preact
ResNet-110 1.75x slower at batch 128, and of preact ResNet-20 up to 100x slower at batch 8
(docs/performance.md, "Threads on a shared machine").

The rule of ``auto``: the cores of this process's CPU affinity, less the cores' worth of
CPU time that the machine spent busy over a short sample of ``/proc/stat`` at start
(``SAMPLE_S``; time stolen by a hypervisor counts as busy), rounded down with
``FREE_SLACK`` of tolerance, shared among the processes of this node
(``LOCAL_WORLD_SIZE``), never more than torch's own count (the cores, or
``$OMP_NUM_THREADS`` when set), and at least 1. Where ``/proc/stat`` cannot be read the
1-minute load average stands for the busy cores; where neither exists, torch's own count
is kept. A resumed run keeps the count it recorded (a bit-identical continuation on the
CPU needs the same count); an explicit number is always used as given.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

SAMPLE_S = 0.3  # seconds of /proc/stat sampled at start
FREE_SLACK = 0.2  # free cores = floor(usable - busy + FREE_SLACK): a core 80% idle counts as free

CpuTimes = dict[int, tuple[int, int]]  # cpu index -> (busy, total) clock ticks


def parse_proc_stat(text: str) -> CpuTimes:
    """(busy, total) ticks per CPU from the ``cpuN`` lines of ``/proc/stat``.

    Fields: user nice system idle iowait irq softirq steal [guest guest_nice]; idle and
    iowait are idle, the rest busy (guest time is already in user)."""
    times = {}
    for line in text.splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or len(fields) < 4:
            continue
        ticks = [int(v) for v in fields[:8]]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        times[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return times


def read_cpu_times() -> CpuTimes | None:
    try:
        with open("/proc/stat") as f:
            return parse_proc_stat(f.read()) or None
    except (OSError, ValueError):
        return None


def usable_cpus() -> set[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def busy_cores(
    cpus: set[int],
    sample_s: float = SAMPLE_S,
    read: Callable[[], CpuTimes | None] = read_cpu_times,
    sleep: Callable[[float], None] = time.sleep,
    loadavg: Callable[[], tuple[float, float, float]] | None = getattr(os, "getloadavg", None),
) -> float | None:
    """The cores' worth of busy time on ``cpus`` over ``sample_s`` seconds (this process
    sleeps meanwhile, so it is the other processes'); the 1-minute load average where
    ``/proc/stat`` is missing; None where neither can be read."""
    before = read()
    if before is not None:
        sleep(sample_s)
        after = read()
        if after is not None:
            busy = 0.0
            for cpu in cpus & before.keys() & after.keys():
                ticks = after[cpu][1] - before[cpu][1]
                if ticks > 0:
                    busy += min(1.0, max(0.0, (after[cpu][0] - before[cpu][0]) / ticks))
            return busy
    if loadavg is not None:
        try:
            return min(float(len(cpus)), loadavg()[0])
        except OSError:
            pass
    return None


def auto_threads(torch_own: int, usable: int, busy: float | None, local_processes: int = 1) -> int:
    """The thread count of ``auto`` from its readings (see the module's rule)."""
    if busy is None:
        return max(1, torch_own)
    free = int(usable - busy + FREE_SLACK)
    return max(1, min(torch_own, free // max(1, local_processes)))


def resolve_threads(setting, torch_own: int, recorded: int | None = None, busy_reading=None) -> int | None:
    """The thread count a run sets: ``setting`` when it is a number, None (torch's own,
    unchanged) for None; for ``auto`` the ``recorded`` count of a resumed run, else the
    rule of :func:`auto_threads` on this machine's readings now."""
    if setting is None or isinstance(setting, int):
        return setting
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1:
        return max(1, min(recorded, torch_own))
    cpus = usable_cpus()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return auto_threads(torch_own, len(cpus), (busy_reading or busy_cores)(cpus), local)
