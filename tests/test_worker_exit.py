"""Workers end with their parent (idresnet.signals.exit_with_parent), also a worker that
starts after its parent was SIGKILLed: torch's DataLoader watchdog alone misses that one."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

MIDDLE = textwrap.dedent(
    """
    import os, sys, time
    from idresnet.signals import exit_with_parent
    parent, late = os.getpid(), sys.argv[2] == "late"
    pid = os.fork()
    if pid == 0:
        if late:  # start only after the parent is gone, as a worker forked just before a kill
            while os.getppid() == parent:
                time.sleep(0.01)
        exit_with_parent(parent)
        time.sleep(60)
        os._exit(3)
    open(sys.argv[1], "w").write(str(pid))
    time.sleep(60)
    """
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("when", ["running", "late"])
def test_a_worker_ends_when_its_parent_is_killed(tmp_path, when):
    if not os.path.isdir("/proc"):
        pytest.skip("reads /proc")
    pid_file = tmp_path / "pid"
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, str(pid_file), when])
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and middle.poll() is None
        time.sleep(0.05)
    worker = int(pid_file.read_text())
    time.sleep(0.5 if when == "running" else 0)  # the worker has set itself up
    middle.send_signal(signal.SIGKILL)
    middle.wait(10)
    deadline = time.monotonic() + 10
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    gone = not alive(worker)
    if not gone:
        os.kill(worker, signal.SIGKILL)
    assert gone, f"the {when} worker outlived its SIGKILLed parent"
