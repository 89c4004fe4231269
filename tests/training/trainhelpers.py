"""Helpers of the training tests (a module with a unique name, importable from test files)."""

import os
import subprocess
import sys

# preact_resnet20 at width 0.25 (4-8-16 channels, 17k parameters) on 256 synthetic images
TINY = dict(model="preact_resnet20", model_kwargs={"width": 0.25}, dataset="synthetic",
            train_size=256, test_size=64, batch_size=32, iterations=24, lr_milestones=[12, 18],
            warmup_iters=2, log_interval=4, eval_interval=8, progress=False)


def tiny_args(**changes) -> list[str]:
    """TINY (with changes) as command-line flags."""
    values = {**TINY, **changes}
    args = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, dict):
            args += [flag, *(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, (list, tuple)):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return args


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "idresnet.cli.main", *args]


def quiet_env() -> dict:
    """The environment of the test's subprocesses: one thread each, so that the runs
    compared for bit-identity use the same kernels and small shared machines stay usable."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_cli(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout,
                          env=quiet_env(), **kw)
