"""Helpers of the training tests (a module with a unique name, importable from test files)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

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

# the same network on an image folder of 8x8 PNGs (image_folder: 64 training images, 16 test)
FOLDER_TINY = dict(
    model="preact_resnet20",
    model_kwargs={"width": 0.25},
    dataset="folder",
    batch_size=16,
    iterations=12,
    lr_milestones=[6],
    checkpoint_interval=2,
    eval_interval=6,
    log_interval=2,
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


def reference_run(tmp_path_factory, args) -> Path:
    """The run folder of an uninterrupted CLI run of ``args`` (for a module's fixture)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = run_cli("train", *args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def injected_command(script: str, *args) -> list[str]:
    """The CLI with ``args``, after ``script`` (Python that patches a phase to inject a fault)."""
    code = textwrap.dedent(script) + "\nimport sys\nfrom idresnet.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, *args]


def same_weights(a, b) -> bool:
    """Whether the run folders ``a`` and ``b`` hold torch.equal final weights."""
    from idresnet.weights import load_weights

    wa, _ = load_weights(Path(a) / "weights.safetensors")
    wb, _ = load_weights(Path(b) / "weights.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def without_timing(run, timing=("images_per_s", "wall_time_s")) -> list[dict]:
    """The metrics rows of run folder ``run`` without the columns that time the run."""
    from idresnet.training.metrics import read_metrics

    return [{k: v for k, v in r.items() if k not in timing} for r in read_metrics(Path(run) / "metrics.csv")]


def evaluate_calling(evaluate, hook, evaluation: int | None = None):
    """``evaluate`` (as training.rundata calls it) calling ``hook(i)`` as test batch i is drawn,
    in the ``evaluation``-th call only (every call when None): to stop or slow a batch."""
    calls = []

    def evaluate_with_hook(model, loader, **kw):
        calls.append(1)
        if evaluation is not None and len(calls) != evaluation:
            return evaluate(model, loader, **kw)
        batches = loader.epoch

        def epoch(e, **k):
            for i, batch in enumerate(batches(e, **k)):
                hook(i)
                yield batch

        loader.epoch = epoch
        try:
            return evaluate(model, loader, **kw)
        finally:
            del loader.epoch

    return evaluate_with_hook


def image_folder(root, seed=0, per_class=(32, 8)):
    """root/{train,test}/{a,b}/N.png: random 8x8 PNGs, ``per_class`` (train, test) of each class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "test"), per_class):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")
    return root


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


def load_by_path(name: str, relative: str):
    """The module at ``relative`` (to the repository's root), loaded by path as ``name``
    (for files outside a package: tests/data, benchmarks)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / relative
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def databuild():
    """tests/data/databuild.py (tests/data is not a package)."""
    return load_by_path("_databuild_for_training", "tests/data/databuild.py")


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
