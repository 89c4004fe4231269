"""Small stand-ins for the files the docs' examples name, and how commands are shrunk to them.

Three tables say everything the docs test changes in an example:

- :data:`PLACEHOLDERS`: text that names something outside the working folder (a path of
  a machine, a word such as ``PATH``) and the fixture that replaces it, in shell words and
  in Python string literals.
- :data:`FILES`: files a block assumes in (or next to) its working folder; each block runs
  in a new folder ``work/`` where they are made (so ``../shared/datasets/...`` exists too).
- :data:`SHRINK`: flags appended to an ``idresnet`` command (after the doc's own, so a
  renamed doc flag still fails) that make it run in seconds; :data:`PYTHON_SHRINK` the
  same for the Python examples (literal replacements), and :data:`TRAIN_VALUES` the
  sizes of the runs of their ``TrainConfig``.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def databuild():
    return _load("_databuild_for_docs", TESTS / "data" / "databuild.py")


# ---------------------------------------------------------------- the fixtures

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar_jpeg_archive(path: Path) -> Path:
    """A tiny copy of the layout of ``cifar10-jpeg.tar.gz``: train/<class>/*.jpg, test/<class>/*.jpg."""
    db = databuild()
    folder = path.parent / (path.name + ".d")
    db.image_folder(folder, classes=CIFAR10_CLASSES, per_class=(8, 4))
    for png in folder.rglob("*.png"):  # the real copy holds JPEGs
        from PIL import Image

        Image.open(png).convert("RGB").save(png.with_suffix(".jpg"), quality=90)
        png.unlink()
    db.tar_dir(folder, path)
    shutil.rmtree(folder)
    return path


def cifar_python_archive(path: Path, name: str) -> Path:
    """The official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` layout, 32 images
    a batch: 160 training and 32 test images (the smoke scale takes 64 and 32)."""
    db = databuild()
    return db.write_cifar_archive(path, db.cifar_batches(name, per_batch=32), name)


def imagenet(path: Path) -> Path:
    """3 classes of 22 training and 11 val JPEGs (the smoke scale takes 64 and 32)."""
    return databuild().imagenet_folder(path, train=22, val=11, corrupt=False)


def torch7_resnet200(path: Path) -> Path:
    """fb.resnet.torch's pre-activation ResNet-200 at 4 stem channels (64 in the real file)."""
    t7build = _load("_t7build_for_docs", TESTS / "pretrained" / "t7build.py")
    t7build.save_t7(path, t7build.fb_resnet(200, "preresnet", "2016-04-30", width=4))
    return path


def pytorchcv_weights(path: Path, arch: str) -> Path:
    """A state dict of pytorchcv's ``arch`` with random weights, as its published files hold."""
    import torch
    from pytorchcv.models import preresnet, preresnet_cifar

    module = preresnet_cifar if "cifar" in arch else preresnet
    torch.save(getattr(module, arch)().state_dict(), path)
    return path


def converted(path: Path, source: Path) -> Path:
    from idresnet.pretrained import convert

    convert(source, path)
    return path


def images(folder: Path) -> None:
    db = databuild()
    db.write_image(folder / "photo.jpg", (200, 40, 40), size=(50, 70))
    db.write_image(folder / "photos" / "a.jpg", (40, 200, 40), size=(64, 64))
    db.write_image(folder / "photos" / "b.png", (40, 40, 200), size=(40, 48))
    db.write_image(folder / "more" / "c.png", (90, 90, 90), size=(32, 32))


def interrupted_run(path: Path) -> Path:
    """The tests' tiny run (trainhelpers.TINY) stopped as by Ctrl-C after 2 of 4 iterations:
    what ``--resume`` continues."""
    import pytest

    from idresnet.training import TrainConfig, train

    helpers = _load("_trainhelpers_for_docs", TESTS / "training" / "trainhelpers.py")
    values = {**helpers.TINY, "iterations": 4, "lr_milestones": [2], "warmup_iters": 0, "eval_interval": 2}
    with pytest.MonkeyPatch.context() as m:
        helpers.interrupt_at(m, 2)
        assert train(TrainConfig(**values, out=str(path))).status == "interrupted"
    return path


class Fixtures:
    """The fixtures, built once per session under ``root`` (each on first use)."""

    def __init__(self, root: Path):
        self.root = root
        self._made: dict[str, Path] = {}

    def get(self, name: str) -> Path:
        if name not in self._made:
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made[name] = BUILDERS[name](path, self)
        return self._made[name]


BUILDERS = {
    "cifar10-jpeg.tar.gz": lambda p, fx: cifar_jpeg_archive(p),
    "cifar-10-python.tar.gz": lambda p, fx: cifar_python_archive(p, "cifar10"),
    "cifar-100-python.tar.gz": lambda p, fx: cifar_python_archive(p, "cifar100"),
    "imagenet": lambda p, fx: imagenet(p),
    "resnet-200.t7": lambda p, fx: torch7_resnet200(p),
    "resnet200.safetensors": lambda p, fx: converted(p, fx.get("resnet-200.t7")),
    "preresnet164bn_cifar10-0364-429012d4.pth": lambda p, fx: pytorchcv_weights(p, "preresnet164bn_cifar10"),
    "weights.pth": lambda p, fx: pytorchcv_weights(p, "preresnet50b"),
    "interrupted-run": lambda p, fx: interrupted_run(p),
    "checkout": lambda p, fx: TESTS.parent,  # the repository itself (its hubconf.py and results/)
}

# text in the docs -> fixture (a BUILDERS name) or, for outputs, a folder below the working folder
PLACEHOLDERS = {
    "PATH": "cifar10-jpeg.tar.gz",  # "--data PATH": the README's word for a dataset path
    "/path/cifar10-jpeg.tar.gz": "cifar10-jpeg.tar.gz",
    "/data/imagenet": "imagenet",
    "/tmp/smoke": "work:tmp-smoke",
    "/path/to/idresnet": "checkout",  # torch.hub.load(..., source="local") of the checkout
    '"cuda"': '"cpu"',  # device="cuda" in the Python examples, where torch sees no GPU (checked at use)
}

# files a block finds in its working folder (work/...) or next to it (../...)
FILES = {
    "../shared/datasets/cifar10-jpeg.tar.gz": "cifar10-jpeg.tar.gz",
    "cifar-10-python.tar.gz": "cifar-10-python.tar.gz",
    "cifar-100-python.tar.gz": "cifar-100-python.tar.gz",
    "resnet-200.t7": "resnet-200.t7",
    "preresnet164bn_cifar10-0364-429012d4.pth": "preresnet164bn_cifar10-0364-429012d4.pth",
    "weights.pth": "weights.pth",
    "resnet200.safetensors": "resnet200.safetensors",  # the README's Python example loads what its commands convert
    "runs/RUN": "interrupted-run",
    "my.yaml": "text:model: preact_resnet20\ndataset: synthetic\n",
    "photo.jpg, photos/, more/*.png": "images",
}


def make_files(work: Path, fixtures: Fixtures, wanted) -> None:
    """The FILES entries ``wanted`` (names the block's text mentions) in ``work``."""
    for name in wanted:
        what = FILES[name]
        if what == "images":
            images(work)
            continue
        dest = (work / name).resolve()
        dest.parent.mkdir(parents=True, exist_ok=True)
        if what.startswith("text:"):
            dest.write_text(what[len("text:") :])
        else:
            source = fixtures.get(what)
            (shutil.copytree if source.is_dir() else shutil.copy)(source, dest)


def files_named(text: str) -> list[str]:
    """The FILES entries a block's text mentions."""
    return [name for name in FILES if any(part.strip() in text for part in name.split(","))]


def substitute(word: str, work: Path, fixtures: Fixtures) -> str:
    """A shell word or Python string literal with its placeholder replaced."""
    target = PLACEHOLDERS.get(word)
    if target is None:
        return word
    if target.startswith('"'):
        return target
    if target.startswith("work:"):
        return str(work / target[len("work:") :])
    return str(fixtures.get(target))


# ---------------------------------------------------------------- shrinking


def _value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def shrink_train(argv: list[str]) -> list[str]:
    """``idresnet train``: width 1/4, a 2-iteration schedule (scaled back up by ``--budget``),
    batch 8, an evaluation at the end, no progress bar. A resume gets only what a resume may
    change (``--resume auto`` may start a run: it is shrunk)."""
    if "--resume" in argv and argv[argv.index("--resume") + 1 :][:1] != ["auto"]:
        return [*argv, "--no-progress"]
    budget = float(_value(argv, "--budget") or 1)
    iterations = math.ceil(2 / budget)
    argv = _with_model_kwarg(argv, "width=0.25")
    sizes = [(flag, "16") for flag in ("--train-size", "--test-size") if flag in argv]  # the doc's, cut down
    sizes += _val_split(argv)
    return [
        *argv,
        *("--iterations", str(iterations), "--lr-milestones", str(math.ceil(1 / budget))),
        *("--warmup-iters", "0", "--batch-size", "8", "--eval-interval", str(iterations)),
        *("--log-interval", "1", "--no-progress"),
        *(word for pair in sizes for word in pair),
    ]


def _val_split(argv: list[str]) -> list[tuple[str, str]]:
    """The doc's ``--val-split``, cut down to 1 image of each of the fixtures' 10 classes."""
    return [("--val-split", "10")] if "--val-split" in argv else []


def _with_model_kwarg(argv: list[str], option: str) -> list[str]:
    """``argv`` with ``option`` added to its ``--model-kwargs`` (or a new one)."""
    if "--model-kwargs" not in argv:
        return [*argv, "--model-kwargs", option]
    i = argv.index("--model-kwargs") + 1
    return [*argv[:i], option, *argv[i:]]


def shrink_analyze(argv: list[str]) -> list[str]:
    return [*_with_model_kwarg(argv, "width=0.25"), "--batch-size", "4"]


def shrink_bench(argv: list[str]) -> list[str]:
    return [*argv, "--steps", "1", "--repeats", "1", "--warmup", "1", "--batch-size", "4", "--no-memory"]


SHRINK = {
    "train": shrink_train,
    "analyze": shrink_analyze,
    "bench": shrink_bench,
    "reproduce": lambda argv: (
        argv
        if "--list" in argv
        else [*argv, "--scale", "smoke", "--runs", "1", *(w for pair in _val_split(argv) for w in pair)]
    ),
}

# text of the Python examples -> what the docs test runs instead (a fixture has fewer images than a batch)
PYTHON_SHRINK = {
    "batch_size=128": "batch_size=8",
    "batch_size=256": "batch_size=8",
    "batch_size=500": "batch_size=8",
    "range(164)": "range(2)",
    "workers=8": "workers=2",
}

# TrainConfig values of the Python examples' runs (the same sizes as shrink_train's)
TRAIN_VALUES = {
    "iterations": 2,
    "lr_milestones": [1],
    "warmup_iters": 0,
    "batch_size": 8,
    "eval_interval": 2,
    "log_interval": 1,
    "progress": False,
}
