"""The same command continues a run after a restart, for real (CPU, gloo, one thread per
process, every process on 127.0.0.1): ``torchrun --max-restarts 1`` relaunching its workers
after one is killed, two torchrun nodes (static and c10d rendezvous) run again after a
kill, and a batch job's requeue loop. Each run is ``idresnet train ... --resume auto`` through
fault_worker.py, which kills a rank after a given iteration (once) and logs the iterations
rank 0 trains.

What is checked: every attempt exits as it should; the run ends ``finished`` with weights
``torch.equal`` to an uninterrupted run's (gloo's sums of two are order-free: exact) and its
metrics rows (timings aside); each attempt starts right after the last checkpoint of the
one before, so only the iterations after that checkpoint are trained twice.

Bounded: each torchrun (or train) process is killed with its workers after RUN_TIMEOUT_S;
the process group must form within IDRESNET_GROUP_TIMEOUT (60 s here; 5 s where the test
is that it cannot), and a rank that loses its peer fails in its next collective.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_torchrun_restart import torchrun_can_run
from trainhelpers import load_by_path, quiet_env, same_weights, tiny_args, without_timing

from idresnet.training.metrics import read_status
from idresnet.training.rundir import read_run_info

pytestmark = pytest.mark.slow


# benchmarks/torchrun_restart_repro.py (plain PyTorch): its driver's process helpers
REPRO = load_by_path("_torchrun_restart_repro", "benchmarks/torchrun_restart_repro.py")

WORKER = str(Path(__file__).with_name("fault_worker.py"))
# 40 iterations, a checkpoint every 4 (and at the evaluations at 20 and 40)
ARGS = tiny_args(
    iterations=40, lr_milestones=[20, 30], warmup_iters=2, checkpoint_interval=4, eval_interval=20, log_interval=4
)
KILL_AT = 10  # a rank dies after the step to iteration 10: the last checkpoint is at 8
RUN_TIMEOUT_S = 300
GROUP_TIMEOUT_S = "60"
LAUNCHES = {"standalone": 1, "static-2node": 2, "c10d-2node": 2}  # torchrun processes (nodes)


def torchrun_commands(launch: str, port: int, out: Path, max_restarts: int = 0, extra=()) -> list[list[str]]:
    """The command of each node: two workers in all, each node running the same arguments."""
    run = [sys.executable, "-m", "torch.distributed.run", "--max-restarts", str(max_restarts)]
    run += ["--monitor-interval", "0.1", *extra]
    train = [WORKER, "train", *ARGS, "--out", str(out), "--resume", "auto"]
    if launch == "standalone":
        return [[*run, "--standalone", "--nproc-per-node", "2", *train]]
    if launch == "static-2node":
        rdzv = ["--master-addr", "127.0.0.1", "--master-port", str(port)]
    else:
        rdzv = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"job{port}"]
    return [[*run, "--nnodes", "2", "--node-rank", str(n), "--nproc-per-node", "1", *rdzv, *train] for n in (0, 1)]


def run_nodes(commands, env, logs: Path) -> list[int]:
    """Run every node's command at once; their exit codes (output in ``logs``/node<N>.log).
    At RUN_TIMEOUT_S the nodes and their workers are killed and the test fails."""
    logs.mkdir(parents=True, exist_ok=True)
    files = [open(logs / f"node{n}.log", "w") for n in range(len(commands))]
    procs = [subprocess.Popen(c, stdout=f, stderr=subprocess.STDOUT, env=env) for c, f in zip(commands, files)]
    deadline, codes, hung = time.monotonic() + RUN_TIMEOUT_S, [], False
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            hung = True
            REPRO.kill_tree(proc)  # torchrun and its workers (in sessions of their own)
            codes.append(proc.wait())
    for f in files:
        f.close()
    assert not hung, f"a node ran past {RUN_TIMEOUT_S} s: {output(logs)[-3000:]}"
    return codes


def output(logs: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(logs.glob("node*.log")))


def fault_env(tmp_path: Path, **faults) -> dict:
    env = quiet_env()
    env.update({"IDRESNET_GROUP_TIMEOUT": GROUP_TIMEOUT_S, "IDRESNET_TEST_MARKS": str(tmp_path)})
    env["IDRESNET_TEST_STEPS"] = str(tmp_path / "steps.log")
    env.update({f"IDRESNET_TEST_{k.upper()}": str(v) for k, v in faults.items()})
    return env


def attempts(tmp_path: Path) -> list[list[int]]:
    """The iterations rank 0 trained, per process (attempt), in order."""
    runs: dict[str, list[int]] = {}
    for pid, it in (line.split() for line in (tmp_path / "steps.log").read_text().splitlines()):
        runs.setdefault(pid, []).append(int(it))
    return list(runs.values())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run never interrupted: two processes under torchrun (one node)."""
    reason = torchrun_can_run()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("reference")
    codes = run_nodes(torchrun_commands("standalone", 0, tmp / "run"), fault_env(tmp), tmp / "logs")
    assert codes == [0], output(tmp / "logs")[-3000:]
    return tmp / "run"


def assert_finished_as(reference: Path, run: Path) -> None:
    assert read_status(run)["status"] == "finished"
    assert same_weights(reference, run)
    assert without_timing(run) == without_timing(reference)


@pytest.mark.parametrize("launch", ["standalone", "c10d-2node"])
def test_torchrun_relaunch_resumes_and_finishes(reference, tmp_path, launch):
    """torchrun --max-restarts 1, rank 1 killed after iteration 10: torchrun relaunches both
    workers with the same arguments, their group forms again, --resume auto continues from
    the checkpoint at 8. Under c10d with two nodes the node relaunched for the other node's
    failure counts no restart: the case a prefix per restart count cannot serve."""
    run = tmp_path / "run"
    commands = torchrun_commands(launch, REPRO.free_port(), run, max_restarts=1)
    codes = run_nodes(commands, fault_env(tmp_path, kills=KILL_AT), tmp_path / "logs")
    assert codes == [0] * LAUNCHES[launch], output(tmp_path / "logs")[-3000:]
    assert (tmp_path / f"killed-{KILL_AT}").exists()  # the kill happened
    first, relaunch = attempts(tmp_path)
    assert first == list(range(1, KILL_AT + 1)) and relaunch == list(range(9, 41))
    assert read_run_info(run)["resumed_from"] == 8
    assert_finished_as(reference, run)


@pytest.mark.parametrize("launch", ["static-2node", "c10d-2node"])
def test_two_nodes_killed_then_the_same_command_again_finishes(reference, tmp_path, launch):
    """Two torchrun nodes on 127.0.0.1 (no restarts): rank 1 (node 1) is killed after
    iteration 10, both nodes end (non-zero); the same commands again on both nodes (the
    same port) continue from the checkpoint at 8 and finish."""
    run, port = tmp_path / "run", REPRO.free_port()
    env = fault_env(tmp_path, kills=KILL_AT)
    killed = run_nodes(torchrun_commands(launch, port, run), env, tmp_path / "killed")
    assert all(code != 0 for code in killed), output(tmp_path / "killed")[-3000:]
    assert (tmp_path / f"killed-{KILL_AT}").exists() and not (run / "weights.safetensors").exists()
    again = run_nodes(torchrun_commands(launch, port, run), env, tmp_path / "again")
    assert again == [0, 0], output(tmp_path / "again")[-3000:]
    first, second = attempts(tmp_path)
    assert first == list(range(1, KILL_AT + 1)) and second == list(range(9, 41))
    assert_finished_as(reference, run)


def test_a_relaunched_group_that_cannot_form_ends_with_one_line(reference, tmp_path):
    """The relaunched rank 1 never joins: rank 0 gives up after IDRESNET_GROUP_TIMEOUT (5 s)
    with one line naming the upstream issue and the workaround (no traceback), torchrun
    ends non-zero; then the workaround, the same command again, finishes the run."""
    run = tmp_path / "run"
    commands = torchrun_commands("standalone", 0, run, 1, ["--log-dir", str(tmp_path / "torchrun"), "--redirects", "3"])
    env = {**fault_env(tmp_path, kills=KILL_AT, absent=1), "IDRESNET_GROUP_TIMEOUT": "5"}
    t0 = time.monotonic()
    assert run_nodes(commands, env, tmp_path / "logs") != [0]
    assert time.monotonic() - t0 < RUN_TIMEOUT_S / 2
    (err,) = list((tmp_path / "torchrun").glob("*/attempt_1/0/stderr.log"))
    lines = [line for line in err.read_text().splitlines() if "idresnet" in line]
    assert "Traceback" not in err.read_text() and len(lines) == 1, err.read_text()
    assert "did not form" in lines[0] and "pytorch/pytorch#135712" in lines[0] and "run the same command" in lines[0]
    again = run_nodes(torchrun_commands("standalone", 0, run), fault_env(tmp_path), tmp_path / "again")
    assert again == [0], output(tmp_path / "again")[-3000:]
    assert attempts(tmp_path) == [list(range(1, KILL_AT + 1)), list(range(9, 41))]  # the relaunch trained none
    assert_finished_as(reference, run)


def test_a_requeue_loop_finishes_one_run_and_trains_again_only_after_the_last_checkpoint(tmp_path):
    """A batch job's requeue: the same `idresnet train ... --resume auto` three times, killed
    after iterations 10 and 22 (checkpoints at 8 and 20), then a fourth time after it
    finished. One run, finished, as the uninterrupted one; attempt k+1 trains from the last
    checkpoint of attempt k on (nothing before it twice); the fourth trains nothing."""

    def train(out, env):
        command = [sys.executable, WORKER, "train", *ARGS, "--out", str(out), "--resume", "auto"]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)

    env = fault_env(tmp_path, kills="10,22")
    codes = [train(tmp_path / "run", env).returncode for _ in range(4)]
    assert codes == [-signal.SIGKILL, -signal.SIGKILL, 0, 0]
    assert attempts(tmp_path) == [list(range(1, 11)), list(range(9, 23)), list(range(21, 41))]
    whole = train(tmp_path / "whole", quiet_env())
    assert whole.returncode == 0, whole.stderr
    assert_finished_as(tmp_path / "whole", tmp_path / "run")
