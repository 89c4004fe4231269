"""How idresnet forms its process group (training/distributed.py): so that torchrun's
relaunch can form it again, within a deadline, or with one line that says why not.

A one-rank gloo group over a TCPStore that the test hosts stands in for torchrun's agent
store (``TORCHELASTIC_USE_AGENT_STORE``): the keys the group set are gone once it formed,
which is what lets a relaunch form its own (tests/training/test_torchrun_resume.py runs
the relaunches; benchmarks/torchrun_restart_repro.py the plain-PyTorch failure).
"""

import datetime
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as torch_dist

from idresnet.errors import UsageError
from idresnet.training import distributed
from idresnet.training.distributed import FORMED_KEY, DistInfo, form_group, group_timeout

pytestmark = pytest.mark.skipif(not torch_dist.is_gloo_available(), reason="this torch has no gloo backend")

CONNECT_REFUSED = (
    "Gloo connectFullMesh failed with [../third_party/gloo/gloo/transport/tcp/pair.cc:152] timed out "
    "connecting: SO_ERROR: Connection refused, remote=[127.0.0.1]:40001"
)


@pytest.fixture
def agent_store(monkeypatch):
    """A TCPStore server at a free port, and the environment torchrun gives its workers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = torch_dist.TCPStore("127.0.0.1", port, 1, True, timeout=datetime.timedelta(seconds=10))
    for name, value in dict(
        TORCHELASTIC_USE_AGENT_STORE="True", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), IDRESNET_GROUP_TIMEOUT="5"
    ).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    yield server
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def spy_on_forget(monkeypatch) -> list[str]:
    """The keys :class:`KeysSet` forgets (recorded before they are deleted)."""
    forgotten: list[str] = []
    forget = distributed.KeysSet.forget

    def recording(self):
        forgotten.extend(self.keys)
        forget(self)

    monkeypatch.setattr(distributed.KeysSet, "forget", recording)
    return forgotten


def test_a_formed_group_leaves_no_address_in_the_store(agent_store, monkeypatch):
    forgotten = spy_on_forget(monkeypatch)
    form_group("gloo", DistInfo(0, 1, 0))
    assert forgotten and any("cpu" in key for key in forgotten)  # gloo's address of rank 0 was set ...
    assert not any(agent_store.check([f"default_pg/{key}"]) for key in forgotten)  # ... and is gone
    assert agent_store.check([FORMED_KEY])  # a later group through this store knows it is a relaunch
    backend = torch_dist.distributed_c10d._get_default_group()._get_backend(torch.device("cpu"))
    assert backend.options._timeout == datetime.timedelta(minutes=30)  # collectives: not the 5 s of forming
    t = torch.ones(3)
    torch_dist.all_reduce(t)
    assert t.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("restart, formed_before", [("1", False), ("0", True)])
def test_a_relaunch_that_cannot_form_is_one_line_naming_the_upstream_issue(
    agent_store, monkeypatch, restart, formed_before
):
    """A relaunch: torchrun counted a restart, or (a node relaunched for another node's
    failure, c10d) a group formed through this store before."""
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", restart)
    if formed_before:
        agent_store.set(FORMED_KEY, "1")
    forgotten = spy_on_forget(monkeypatch)

    def refused(backend, store, rank, world_size, timeout):
        store.set("0//cpu//0/0", b"this rank's address")
        raise RuntimeError(CONNECT_REFUSED + "\nmore lines of gloo")

    monkeypatch.setattr(torch_dist, "init_process_group", refused)
    with pytest.raises(UsageError) as err:
        form_group("gloo", DistInfo(0, 1, 0))
    message = str(err.value)
    assert "\n" not in message and "did not form" in message and "Connection refused" in message
    assert "pytorch/pytorch#135712" in message and "run the same command again" in message
    assert forgotten == ["0//cpu//0/0"] and not agent_store.check(["default_pg/0//cpu//0/0"])


def test_a_first_group_that_cannot_form_says_what_to_check(agent_store, monkeypatch):
    def timed_out(backend, store, rank, world_size, timeout):
        raise torch_dist.DistStoreError("wait timeout after 5000ms, keys: /default_pg/0//cpu//0/1")

    monkeypatch.setattr(torch_dist, "init_process_group", timed_out)
    with pytest.raises(UsageError, match=r"of 1 processes did not form within 5 s .*IDRESNET_GROUP_TIMEOUT") as err:
        form_group("gloo", DistInfo(0, 1, 0))
    assert "135712" not in str(err.value)


@pytest.mark.parametrize("text", ["abc", "0", "-3", "inf", "nan"])
def test_a_bad_group_timeout_is_one_line(monkeypatch, text):
    monkeypatch.setenv("IDRESNET_GROUP_TIMEOUT", text)
    with pytest.raises(UsageError, match=r"^IDRESNET_GROUP_TIMEOUT must be a number of seconds > 0, not "):
        group_timeout()


def test_group_timeout(monkeypatch):
    monkeypatch.delenv("IDRESNET_GROUP_TIMEOUT", raising=False)
    assert group_timeout() == 300.0
    monkeypatch.setenv("IDRESNET_GROUP_TIMEOUT", "2.5")
    assert group_timeout() == 2.5


def test_a_group_blocked_past_its_deadline_ends_the_process_with_one_line(tmp_path):
    """Where torch's own timeout would take longer (a connect to a dead address retries for 5
    times the timeout) the deadline ends the process: status 2, one line, no traceback."""
    script = textwrap.dedent(
        """
        import os, time
        import torch.distributed as torch_dist
        from idresnet.training import distributed
        os.environ.update(TORCHELASTIC_RESTART_COUNT="1", IDRESNET_GROUP_TIMEOUT="0.2")
        distributed.DEADLINE_GRACE_S = 0.1
        torch_dist.rendezvous = lambda *a, **k: iter([(torch_dist.HashStore(), 0, 2)])
        torch_dist.init_process_group = lambda *a, **k: time.sleep(120)
        distributed.form_group("gloo", distributed.DistInfo(0, 2, 0))
        print("formed")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "formed" not in proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("idresnet: error: the process group of torchrun's relaunched")
    assert "no group within 0.2 s" in lines[0] and "pytorch/pytorch#135712" in lines[0]
