"""Does a gloo process group form again after ``torchrun --max-restarts`` relaunches its workers?

Plain PyTorch (nothing from idresnet). Run without torchrun, the script is a driver: it
launches torchrun (one node, or two on 127.0.0.1) ``--tries`` times with ``--max-restarts 1``
and counts the relaunches whose group formed::

    python benchmarks/torchrun_restart_repro.py --launch standalone --store plain --tries 5

Under torchrun (``RANK`` set) it is the worker: it joins a gloo group with a timeout, runs
``all_reduce`` in a loop, and ``--kill-rank`` kills itself (SIGKILL) mid-loop in attempt 0,
so that torchrun relaunches every worker with the same arguments. Each worker prints one
line ``repro rank=R restart=K store=S stale=yes|no|n/a formed=yes|no steps=N ...``: whether
its group formed, in which attempt (``TORCHELASTIC_RESTART_COUNT``), which error it met, and
whether the store already held this rank's gloo address from the attempt before (``stale``).

How the worker makes its group (``--store``):

- ``plain``: ``init_process_group("gloo")`` from the environment, as most scripts do. On
  torch 2.13.0 the relaunched group mostly fails with "Gloo connectFullMesh failed ...
  Connection refused" (or "Connect timeout"): torchrun keeps one TCPStore over all
  restarts, and a relaunched rank can read its peer's address of the attempt before (a
  dead socket) before the peer has overwritten it.
- ``attempt``: the same store under a prefix per ``TORCHELASTIC_RESTART_COUNT``. Works where
  every node counts the same restarts (one node; static rendezvous), not under c10d with
  several nodes, where a node relaunched for another node's failure does not count it.
- ``forget``: the same store; once the group has formed (a barrier), each rank deletes the
  keys it set, so that a relaunch finds none of the attempt before. Works in every case
  measured.
- ``idresnet``: idresnet's own group (``idresnet.training.distributed.form_group``: ``forget``
  with a deadline and a one-line error); the one variant that imports idresnet.

benchmarks/README.md ("torchrun restarts") has the measurements and the sources.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

STORES = ("plain", "attempt", "forget", "idresnet")
LAUNCHES = ("standalone", "static", "static-2node", "c10d-2node")
LINE = re.compile(
    r"^repro rank=(\d+) restart=(\d+) store=\S+ stale=(\S+) formed=(yes|no) steps=(\d+).*?(?: error=(.*))?$"
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", choices=STORES, default="plain", help="how the worker makes its group (see above)")
    p.add_argument("--steps", type=int, default=20, help="all_reduce calls per attempt")
    p.add_argument("--step-seconds", type=float, default=0.05, help="sleep between all_reduce calls")
    p.add_argument("--kill-rank", type=int, default=1, help="global rank that kills itself (-1: none)")
    p.add_argument("--kill-step", type=int, default=5, help="the step it dies at, in attempt 0")
    p.add_argument("--init-delay", type=float, default=0.0, help="seconds a relaunched worker waits before joining")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds the group may take to form or to reduce")
    # driver only
    p.add_argument("--launch", choices=LAUNCHES, default="standalone", help="torchrun's rendezvous (driver)")
    p.add_argument("--tries", type=int, default=3, help="torchrun runs (driver)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for torchrun")
    p.add_argument("--run-timeout", type=float, default=90.0, help="seconds one torchrun run may take (driver)")
    p.add_argument("--log-dir", type=Path, help="keep each run's output here (driver)")
    return p.parse_args(argv)


# ---------------------------------------------------------------- worker


def gloo_address_key(rank: int, store: str) -> str:
    """The store key under which the default group's gloo context of ``rank`` publishes its
    address (torch 2.13: group "0", device "cpu", gloo context 0, gloo/rendezvous/context.cc
    ``connectFullMesh``; ``init_process_group`` adds "default_pg" when it makes the store)."""
    key = f"0//cpu//0/{rank}"
    prefixed = {"attempt": f"{attempt_prefix()}/{key}", "forget": key}
    return prefixed.get(store, f"default_pg/{key}")  # plain, idresnet


class KeyRecorder(dist.Store):
    """A store that passes every call to ``inner`` and remembers the keys set through it."""

    def __init__(self, inner: dist.Store):
        super().__init__()
        self.inner, self.keys_set = inner, []

    def set(self, key, value):
        self.keys_set.append(key)
        self.inner.set(key, value)

    def get(self, key):
        return self.inner.get(key)

    def add(self, key, value):
        return self.inner.add(key, value)

    def compare_set(self, key, expected, desired):
        return self.inner.compare_set(key, expected, desired)

    def wait(self, keys, timeout=None):
        return self.inner.wait(keys) if timeout is None else self.inner.wait(keys, timeout)

    def check(self, keys):
        return self.inner.check(keys)

    def delete_key(self, key):
        return self.inner.delete_key(key)

    def num_keys(self):
        return self.inner.num_keys()

    def set_timeout(self, timeout):
        self.inner.set_timeout(timeout)


def agent_store_client(timeout: datetime.timedelta) -> dist.Store | None:
    """A client of torchrun's agent store (the one ``env://`` connects to), or None where the
    workers host their own store (``TORCHELASTIC_USE_AGENT_STORE`` is not True)."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    return dist.TCPStore(addr, port, is_master=False, timeout=timeout)


def attempt_prefix() -> str:
    return f"attempt{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def report(rank: int, restart: int, args, stale: str, formed: bool, steps: int, t0: float, error: str = "") -> None:
    line = f"repro rank={rank} restart={restart} store={args.store} stale={stale} formed={'yes' if formed else 'no'}"
    detail = f" error={error}" if error else ""
    # one write(2) per line: the workers share torchrun's stdout, and print() would write the
    # line and its newline separately (lines of two ranks could run together)
    os.write(1, f"{line} steps={steps} seconds={time.monotonic() - t0:.1f}{detail}\n".encode())


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def worker(args) -> int:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    timeout = datetime.timedelta(seconds=args.timeout)
    if restart and args.init_delay:
        time.sleep(args.init_delay)
    t0 = time.monotonic()
    client = agent_store_client(timeout)
    stale = "n/a" if client is None else ("yes" if client.check([gloo_address_key(rank, args.store)]) else "no")
    try:
        if args.store == "plain":
            dist.init_process_group("gloo", timeout=timeout)
        elif args.store == "idresnet":
            from idresnet.training import distributed

            os.environ[distributed.GROUP_TIMEOUT_ENV] = str(args.timeout)
            distributed.form_group("gloo", distributed.DistInfo(rank, world, int(os.environ["LOCAL_RANK"])))
        else:
            store, _, _ = next(dist.rendezvous("env://", timeout=timeout))
            if args.store == "attempt":  # the env:// store, under a prefix of its own for this attempt
                store = dist.PrefixStore(attempt_prefix(), store)
            else:  # the env:// store; once every rank joined, the addresses are deleted
                store = recorder = KeyRecorder(store)
            dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=timeout)
            if args.store == "forget":
                dist.barrier()
                for key in recorder.keys_set:
                    recorder.delete_key(key)
    except Exception as exc:  # a relaunch meets a RuntimeError/DistBackendError from gloo here (idresnet: UsageError)
        report(rank, restart, args, stale, False, 0, t0, one_line(exc))
        return 1
    step = 0
    try:
        for step in range(1, args.steps + 1):
            if rank == args.kill_rank and restart == 0 and step == args.kill_step:
                report(rank, restart, args, stale, True, step, t0, "killing itself (SIGKILL)")
                os.kill(os.getpid(), signal.SIGKILL)
            t = torch.ones(4)
            dist.all_reduce(t)
            if t[0].item() != world:
                raise RuntimeError(f"all_reduce gave {t[0].item()}, expected {world}")
            time.sleep(args.step_seconds)
    except Exception as exc:  # a peer died: gloo's "Connection reset/closed by peer", or a timeout
        report(rank, restart, args, stale, True, step, t0, one_line(exc))
        return 1
    report(rank, restart, args, stale, True, step, t0)
    dist.destroy_process_group()
    return 0


# ---------------------------------------------------------------- driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_args(args) -> list[str]:
    return [
        *("--store", args.store, "--steps", str(args.steps), "--step-seconds", str(args.step_seconds)),
        *("--kill-rank", str(args.kill_rank), "--kill-step", str(args.kill_step)),
        *("--init-delay", str(args.init_delay), "--timeout", str(args.timeout)),
    ]


def torchrun_commands(args, port: int) -> list[list[str]]:
    """One torchrun command per node; two workers in all, both on 127.0.0.1."""
    run = [sys.executable, "-m", "torch.distributed.run", "--max-restarts", "1", "--monitor-interval", "0.1"]
    tail = [str(Path(__file__).resolve()), *worker_args(args)]
    if args.launch == "standalone":
        return [[*run, "--standalone", "--nproc-per-node", "2", *tail]]
    static = ["--master-addr", "127.0.0.1", "--master-port", str(port)]
    if args.launch == "static":
        return [[*run, "--nnodes", "1", "--nproc-per-node", "2", *static, *tail]]
    if args.launch == "static-2node":
        return [[*run, "--nnodes", "2", "--node-rank", str(n), "--nproc-per-node", "1", *static, *tail] for n in (0, 1)]
    c10d = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"repro{port}"]
    return [[*run, "--nnodes", "2", "--node-rank", str(n), "--nproc-per-node", "1", *c10d, *tail] for n in (0, 1)]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in sessions of their own)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(proc: subprocess.Popen) -> None:
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_once(args, env: dict[str, str]) -> tuple[list[int | None], str]:
    """Run torchrun once (every node); return the exit codes (None: killed at the deadline)
    and the output of all nodes (in files, not pipes: a full pipe would stall a node)."""
    logs = [tempfile.TemporaryFile("w+") for _ in range(2)]
    procs = [
        subprocess.Popen(c, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        for c, log in zip(torchrun_commands(args, free_port()), logs)
    ]
    deadline = time.monotonic() + args.run_timeout
    codes: list[int | None] = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            proc.wait()
            codes.append(None)
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    return codes, "\n".join(outputs)


def relaunch_outcome(output: str, args, world: int = 2) -> tuple[bool, str]:
    """Did the group form again after the kill: is every rank's last line a finished loop?
    (Only a group of all ranks can finish; under the c10d rendezvous a node may be relaunched
    without counting a restart, so the last line of a rank can say restart=0.)"""
    rows = [m.groups() for line in output.splitlines() if (m := LINE.match(line.strip()))]
    if not any(r[5] and r[5].startswith("killing") for r in rows):
        return False, "the kill in attempt 0 did not happen"
    last = {int(r[0]): r for r in rows}  # each rank's last line
    stale = ",".join(f"{rank}:{r[2]}" for rank, r in sorted(last.items()))
    done = sorted(rank for rank, r in last.items() if r[3] == "yes" and int(r[4]) == args.steps and not r[5])
    if len(done) == world:
        return True, f"formed and finished on every rank (restarts {[int(last[r][1]) for r in done]}, stale {stale})"
    errors = "; ".join(f"rank {rank} restart {r[1]}: {r[5]}" for rank, r in sorted(last.items()) if r[5])
    return False, f"ranks done {done} of {world} (stale {stale}); {errors or 'no error line'}"


def driver(args) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.update(kv.split("=", 1) for kv in args.env)
    formed = 0
    for i in range(1, args.tries + 1):
        t0 = time.monotonic()
        codes, output = run_once(args, env)
        ok, why = relaunch_outcome(output, args)
        formed += ok
        print(f"try {i}: {'OK  ' if ok else 'FAIL'} torchrun exit {codes}, {time.monotonic() - t0:.0f} s: {why}")
        if args.log_dir:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            tag = "".join(c if c.isalnum() else "_" for c in "-".join([args.launch, args.store, *args.env]))
            (args.log_dir / f"{tag}-{i}.log").write_text(output)
    extra = f" env {' '.join(args.env)}" if args.env else ""
    print(
        f"launch={args.launch} store={args.store}{extra}: the relaunched group formed in {formed} of {args.tries} "
        f"tries (torch {torch.__version__})"
    )
    return 0 if formed == args.tries else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    return worker(args) if "RANK" in os.environ else driver(args)


if __name__ == "__main__":
    sys.exit(main())
