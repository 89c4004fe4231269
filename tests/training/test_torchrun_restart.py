"""torchrun ``--max-restarts``: the upstream state that idresnet works around, checked with
the plain-PyTorch reproduction benchmarks/torchrun_restart_repro.py (gloo, CPU, two workers).

On torch 2.13.0 torchrun keeps one TCPStore over all restarts, so a relaunched worker finds
the gloo addresses of the attempt before in it and its group mostly fails to form
(benchmarks/README.md, "torchrun restarts"). Deleting the keys a rank set, once its group
has formed, lets every relaunch form its group. These tests fail when either changes: the
workaround stops working, or torchrun starts giving each restart a clean store (then the
workaround can go). Every run is bounded: the workers' collectives and joins time out after
5 s, each torchrun run after 90 s, the driver after 240 s.
"""

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

pytestmark = pytest.mark.slow

REPRO = Path(__file__).resolve().parents[2] / "benchmarks" / "torchrun_restart_repro.py"


def torchrun_can_run() -> str:
    """Why torchrun with gloo on 127.0.0.1 cannot run here ("" when it can)."""
    if not sys.platform.startswith("linux"):
        return "the reproduction's driver reads /proc to stop torchrun's workers"
    if not (dist.is_available() and dist.is_gloo_available()):
        return "this torch has no gloo backend"
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
    except OSError as exc:
        return f"no TCP socket on 127.0.0.1 ({exc})"
    return ""


def repro(*args: str) -> tuple[int, str]:
    reason = torchrun_can_run()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run(
        [sys.executable, str(REPRO), "--tries", "1", "--timeout", "5", "--run-timeout", "90", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout


@pytest.mark.parametrize("launch", ["standalone", "c10d-2node"])
def test_forgetting_the_keys_lets_a_relaunch_form_its_group(launch):
    """The workaround: a rank killed mid-run, torchrun relaunches both, the group forms and
    finishes its loop. c10d with two nodes is the case a prefix per restart count fails
    (a node relaunched for the other node's failure keeps restart count 0)."""
    code, out = repro("--launch", launch, "--store", "forget")
    assert code == 0 and "formed in 1 of 1 tries" in out, out


def test_a_relaunch_still_finds_the_addresses_of_the_attempt_before():
    """The cause, as torch 2.13.0 has it: the relaunched workers of a plain
    ``init_process_group("gloo")`` connect to the agent's store and find their own gloo
    address of the attempt before already there. If this fails, torchrun gives each restart
    a clean store (see pytorch/pytorch#135712): check whether idresnet's workaround is still
    needed."""
    _, out = repro("--launch", "standalone", "--store", "plain")
    tries = [line for line in out.splitlines() if line.startswith("try 1:")]
    assert tries and "kill in attempt 0 did not happen" not in tries[0], out
    stale = re.search(r"stale ([0-9a-z/:,]+)", tries[0])
    assert stale and ":yes" in stale.group(1), out
