"""Helpers of the training tests (a module with a unique name, importable from test files)."""

import os
import subprocess
import sys

# preact_resnet20 at width 0.25 (4-8-16 channels, 17k parameters) on 256 synthetic images
TINY = dict(
    model="preact_resnet20",
    model_kwargs={"width": 0.25},
    dataset="synthetic",
    train_size=256,
    test_size=64,
    batch_size=32,
    iterations=24,
    lr_milestones=[12, 18],
    warmup_iters=2,
    log_interval=4,
    eval_interval=8,
    progress=False,
)


def tiny_args(**changes) -> list[str]:
    """TINY (with changes) as command-line flags."""
    return as_flags({**TINY, **changes})


def as_flags(values: dict) -> list[str]:
    """Config values as command-line flags."""
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
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout, env=quiet_env(), **kw)


# imagenet_resnet18 at width 0.25 (0.7M parameters) on a tiny ImageNet-layout folder of
# generated JPEGs (3 classes, 16 training files of 40-80 px, one of them damaged, 6 val
# files), at a 32 px training crop and evaluation crops 32 and 48: 4 steps per epoch.
IMAGENET_TINY = dict(
    model="imagenet_resnet18",
    model_kwargs={"width": 0.25},
    dataset="imagenet",
    train_crop=32,
    scale_range=[36, 64],
    eval_crops=[32, 48],
    batch_size=4,
    epochs=3,
    log_interval=2,
    eval_interval=6,
    workers=0,
    progress=False,
)


def databuild():
    """tests/data/databuild.py, loaded by path (tests/data is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data" / "databuild.py"
    spec = importlib.util.spec_from_file_location("_databuild_for_training", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def imagenet_folder(root):
    """The tiny folder of tests/data/databuild.py."""
    from pathlib import Path

    return databuild().imagenet_folder(Path(root))


def interrupt_at(monkeypatch, iteration):
    """Act as if Ctrl-C arrived during iteration ``iteration`` of a training run."""
    from idresnet.training.engine import _Trainer

    step = _Trainer._step

    def step_then_signal(self, x, y):
        step(self, x, y)
        if self.it == iteration:
            self.stop.requested = True

    monkeypatch.setattr(_Trainer, "_step", step_then_signal)
