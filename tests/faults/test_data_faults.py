"""Faults injected into data loading: damaged archives and images, dead and stuck worker
processes, Ctrl-C and SIGTERM while a pool decodes. Each ends in bounded time as one
line (exit 2) or as "interrupted" (exit 130), with no traceback and no process left."""

import gzip
import importlib.util
import io
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from idresnet.cli.main import main
from idresnet.data import folder, stream
from idresnet.data.stream import StreamLoader
from idresnet.errors import DatasetError

CIFAR_JPEG = Path("/work/shared/datasets/cifar10-jpeg.tar.gz")
POOLED = 4000  # images: enough for the decoding pool (folder.POOL_MIN_FILES)
CLASSES = ("ant", "bee", "cat", "dog")
ERROR = "idresnet train: error: "
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="the faults are injected into forked workers")


def _databuild():
    """tests/data/databuild.py, loaded by path (tests/data is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "_databuild_for_faults", Path(__file__).resolve().parents[1] / "data" / "databuild.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IDRESNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IDRESNET_PROGRESS_INTERVAL", "30")


def tiny_folder(root: Path, train: int = POOLED, test_per_class: int = 2) -> Path:
    """root/{train,test}/<class>/NNNNN.png: ``train`` 8x8 PNGs in all, a colour per class."""
    for c, cls in enumerate(CLASSES):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), 40 * c + 20, np.uint8)).save(buf, "PNG")
        for split, n in (("train", train // len(CLASSES)), ("test", test_per_class)):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (root / split / cls / f"{i:05d}.png").write_bytes(buf.getvalue())
    return root


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    return tiny_folder(tmp_path_factory.mktemp("faults") / "clean")


def processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live (not zombie) process, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                state, ppid, pgrp = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue
            if state != "Z":
                out.append((int(entry), int(ppid), int(pgrp)))
    return out


def group_members(pgid: int) -> list[int]:
    return [pid for pid, _ppid, pgrp in processes() if pgrp == pgid]


def children_of(pid: int) -> list[int]:
    return [child for child, ppid, _pgrp in processes() if ppid == pid]


def no_children_soon(pid: int = None, within: float = 10.0) -> bool:
    pid = os.getpid() if pid is None else pid
    deadline = time.monotonic() + within
    while children_of(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not children_of(pid)


# A train command whose decoding sleeps 10 ms per image (4000 images: 20 s on 2 workers).
SLOW = (
    "import sys, time; import idresnet.data.folder as f; d = f._decode_one; "
    "f._decode_one = lambda item, size: (time.sleep(0.01), d(item, size))[1]; "
    "from idresnet.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def train_process(data: Path, out: Path, cache: Path, slow: bool = False) -> subprocess.Popen:
    """``idresnet train --dataset folder`` in a session (process group) of its own."""
    cmd = [sys.executable, "-c", SLOW] if slow else [sys.executable, "-m", "idresnet.cli.main"]
    cmd += [
        "train",
        "--dataset",
        "folder",
        "--data",
        str(data),
        "--model",
        "preact_resnet20",
        "--iterations",
        "2",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IDRESNET_CACHE": str(cache)}
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def error_lines(stderr: str) -> list[str]:
    """stderr without progress lines ("decoding train: 2000/4000 img (...)")."""
    return [line for line in stderr.splitlines() if not re.match(r"decoding \w+: \d+/\d+ img", line)]


# ---------------------------------------------------------------- damaged images and archives


@needs_fork
def test_a_damaged_image_among_thousands(tmp_path):
    data = tiny_folder(tmp_path / "data")
    bad = data / "train" / "bee" / "00500.png"
    bad.write_bytes(bad.read_bytes()[:30])
    start = time.monotonic()
    proc = train_process(data, tmp_path / "run", tmp_path / "cache")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr
    (line,) = error_lines(stderr)
    assert line.startswith(f"{ERROR}{bad}: unreadable image ("), stderr
    assert time.monotonic() - start < 60
    assert group_members(proc.pid) == []


def cli_error(capsys, argv) -> str:
    assert main(["train", "--model", "preact_resnet20", "--iterations", "2", *argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR) and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("damage", ["truncated", "corrupt bytes in a member"])
def test_damaged_cifar_archive_on_the_command_line(tmp_path, capsys, damage):
    db = _databuild()
    archive = db.write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", db.cifar_batches())
    data = archive.read_bytes()
    if damage == "truncated":
        archive.write_bytes(data[: len(data) * 2 // 3])
    else:  # garble the middle of the tar stream, inside data_batch_3's array
        plain = bytearray(gzip.decompress(data))
        mid = len(plain) // 2
        plain[mid : mid + 64] = bytes(64)
        archive.write_bytes(gzip.compress(bytes(plain))[:-8] + data[-8:])  # the old CRC and size
    line = cli_error(capsys, ["--dataset", "cifar10", "--data", str(archive), "--out", str(tmp_path / "run")])
    assert f"{archive}: truncated or damaged archive" in line


@pytest.mark.parametrize("damage", ["truncated", "corrupt bytes in a member"])
def test_damaged_image_folder_tarball_on_the_command_line(tmp_path, capsys, damage):
    data = tiny_folder(tmp_path / "imgs", train=40)
    tarball = _databuild().tar_dir(data, tmp_path / "imgs.tar.gz")
    raw = tarball.read_bytes()
    if damage == "truncated":
        tarball.write_bytes(raw[: len(raw) // 2])
    else:
        mid = len(raw) // 2
        tarball.write_bytes(raw[:mid] + bytes(b ^ 0xFF for b in raw[mid : mid + 16]) + raw[mid + 16 :])
    line = cli_error(capsys, ["--dataset", "folder", "--data", str(tarball), "--out", str(tmp_path / "run")])
    assert f"{tarball}: truncated or damaged archive" in line


@pytest.mark.skipif(not CIFAR_JPEG.is_file(), reason="the CIFAR-10 JPEG copy is not on this machine")
def test_the_reported_truncated_archive(tmp_path, capsys):
    """The report of issue #11: the first 5 MB of cifar10-jpeg.tar.gz."""
    trunc = tmp_path / "trunc.tar.gz"
    with open(CIFAR_JPEG, "rb") as f:
        trunc.write_bytes(f.read(5_000_000))
    line = cli_error(capsys, ["--data", str(trunc), "--budget", "0.001", "--out", str(tmp_path / "run")])
    assert f"{trunc}: truncated or damaged archive" in line


# ---------------------------------------------------------------- signals while decoding


def wait_for_decoding(proc, timeout: float = 60.0) -> None:
    """Until the pool decodes: the first progress line and a worker process are there."""
    deadline = time.monotonic() + timeout
    ready, _, _ = select.select([proc.stderr], [], [], timeout)
    line = proc.stderr.readline() if ready else ""
    assert line.startswith("decoding train: 0/4000 img"), (line, proc.poll())
    while len(group_members(proc.pid)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # the workers are mid-chunk


@needs_fork
@pytest.mark.parametrize(
    "sig,whole_group",
    [
        (signal.SIGINT, True),  # Ctrl-C in a terminal: the whole foreground process group
        (signal.SIGTERM, False),  # kill PID
        (signal.SIGTERM, True),  # a job scheduler or service manager stopping the job
    ],
    ids=["ctrl-c", "sigterm", "sigterm-to-group"],
)
def test_a_signal_while_the_pool_decodes(tmp_path, clean_folder, sig, whole_group):
    proc = train_process(clean_folder, tmp_path / "run", tmp_path / "cache", slow=True)
    try:
        wait_for_decoding(proc)
        sent = time.monotonic()
        (os.killpg if whole_group else os.kill)(proc.pid, sig)
        _, stderr = proc.communicate(timeout=60)
        assert time.monotonic() - sent < 20
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and error_lines(stderr) == ["idresnet train: interrupted"], stderr
    assert group_members(proc.pid) == []


# ---------------------------------------------------------------- dead and stuck decoding workers


def pooled_decode(tmp_path, monkeypatch, hook):
    """decode_files on 2 workers (chunks of 2) over 12 images, ``hook(path)`` run before each."""
    data = tiny_folder(tmp_path / "data", train=12)
    monkeypatch.setattr(folder, "POOL_MIN_FILES", 1)
    monkeypatch.setattr(folder, "CHUNK", 2)
    decode = folder._decode_one

    def hooked(item, size):
        hook(str(item))
        return decode(item, size)

    monkeypatch.setattr(folder, "_decode_one", hooked)
    files = folder.scan_folder(data).train_files
    return lambda: folder.decode_files(files, (8, 8), workers=2)


@needs_fork
def test_a_decoding_worker_killed_for_memory(tmp_path, monkeypatch):
    parent = os.getpid()

    def oom(path):
        if os.getpid() != parent and path.endswith("bee/00002.png"):
            os.kill(os.getpid(), signal.SIGKILL)

    decode = pooled_decode(tmp_path, monkeypatch, oom)
    start = time.monotonic()
    with pytest.raises(
        DatasetError,
        match=r"a decoding worker process died \(killed by SIGKILL; "
        r"out of memory\?\) while decoding 2 images from .*bee/00001\.png",
    ):
        decode()
    assert time.monotonic() - start < 10 and no_children_soon()


@needs_fork
def test_a_stuck_decoding_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(folder, "CHUNK_TIMEOUT_S", 1.0)
    decode = pooled_decode(tmp_path, monkeypatch, lambda path: time.sleep(60) if "cat/0000" in path else None)
    start = time.monotonic()
    with pytest.raises(
        DatasetError,
        match=r"decoding stalled: no chunk of up to 2 images finished in 1 s "
        r"\(one starts at .*cat/00000\.png\)",
    ):
        decode()
    assert time.monotonic() - start < 10 and no_children_soon()  # the sleeping worker was terminated


@needs_fork
def test_ctrl_c_in_the_parent_stops_the_pool(tmp_path, monkeypatch):
    # Python's own Ctrl-C handler, also where pytest was started with SIGINT ignored (a
    # background job of a non-interactive shell: `nohup ... &`, some CI runners).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_in_the_parent_stops_the_pool(tmp_path, monkeypatch)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_in_the_parent_stops_the_pool(tmp_path, monkeypatch):
    parent = os.getpid()

    def interrupt(path):
        if path.endswith("dog/00002.png"):
            time.sleep(0.3)
            os.kill(parent, signal.SIGINT)
            time.sleep(60)

    decode = pooled_decode(tmp_path, monkeypatch, interrupt)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        decode()
    assert time.monotonic() - start < 10 and no_children_soon()


# ---------------------------------------------------------------- streamed loading (DataLoader workers)


class Probe(torch.utils.data.Dataset):
    """Items of the streamed kind; ``behaviour`` runs in the worker for each item."""

    def __init__(self, behaviour=None, n: int = 8):
        self.behaviour, self.n = behaviour, n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        index, _epoch = key
        if self.behaviour:
            self.behaviour(index)
        term, intr = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        value = 1 if (term, intr) == (signal.SIG_IGN, signal.SIG_IGN) else 0
        return torch.full((4, 4, 3), value, dtype=torch.uint8), 0, None


def probe_loader(behaviour=None, workers: int = 1):
    return StreamLoader(
        Probe(behaviour), batch_size=2, train=False, workers=workers, mean=(0, 0, 0), std=(1 / 255, 1 / 255, 1 / 255)
    )


def test_dataloader_workers_leave_sigterm_and_sigint_to_the_training_loop():
    batches = list(probe_loader().epoch(0))
    assert len(batches) == 4 and all(bool((x == 1).all()) for x, _ in batches)


@needs_fork
def test_a_dataloader_worker_killed_for_memory():
    def oom(index):
        if index == 5:
            os.kill(os.getpid(), signal.SIGKILL)

    start = time.monotonic()
    with pytest.raises(
        DatasetError,
        match=r"(DataLoader worker \(pid.*(exited unexpectedly|killed by signal)"
        r"|lost a DataLoader worker process).*"
        r"out of memory\? fewer workers may help\)$",
    ) as exc:
        list(probe_loader(oom).epoch(0))
    assert "\n" not in str(exc.value) and time.monotonic() - start < 30
    del exc
    assert no_children_soon()


@needs_fork
def test_a_dead_worker_report_during_shutdown_is_absorbed(monkeypatch):
    """torch's SIGCHLD handler raised on entry to _shut_down once (CI, stop 18): the
    report came after the error it would report, and must not replace it or leak workers."""
    real, calls = stream._shut_down, []

    def reported_on_entry(batches):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("DataLoader worker (pid 7) is killed by signal: Killed. ")
        real(batches)

    monkeypatch.setattr(stream, "_shut_down", reported_on_entry)
    assert len(list(probe_loader().epoch(0))) == 4 and len(calls) == 2
    assert no_children_soon()

    def other_error(batches):
        real(batches)  # workers stopped, so none outlive the test
        raise RuntimeError("shapes do not match")

    monkeypatch.setattr(stream, "_shut_down", other_error)
    with pytest.raises(RuntimeError, match="shapes do not match"):
        list(probe_loader().epoch(0))


@needs_fork
def test_a_stuck_dataloader_worker(monkeypatch):
    monkeypatch.setattr(stream, "WORKER_TIMEOUT_S", 1)

    def stuck(index):
        if index == 2:
            time.sleep(120)

    start = time.monotonic()
    with pytest.raises(DatasetError, match=r"no batch from the 1 DataLoader worker processes in 1 s") as exc:
        list(probe_loader(stuck).epoch(0))
    assert time.monotonic() - start < 30
    del exc
    assert no_children_soon(within=15)  # SIGKILL ends the sleeping worker at the loader's shutdown


def test_worker_failures_as_torch_reports_them():
    fail = stream.worker_failure
    killed = fail(RuntimeError("DataLoader worker (pid 7) is killed by signal: Killed. "), 2)
    assert isinstance(killed, DatasetError) and str(killed) == (
        "DataLoader worker (pid 7) is killed by signal: Killed. (out of memory? fewer workers may help)"
    )
    stopped = fail(RuntimeError("DataLoader worker (pid 7) is killed by signal: Terminated. "), 2)
    assert isinstance(stopped, KeyboardInterrupt)  # a job stop that signalled every process
    assert "in 300 s" in str(fail(RuntimeError("DataLoader timed out after 300 seconds"), 2))
    assert fail(OSError("Caught OSError in DataLoader worker process 0.\nOriginal Traceback"), 2) is None
    assert fail(RuntimeError("shapes do not match"), 2) is None and fail(EOFError(), 0) is None
