"""The lists of config keys in docs/training.md, generated from :class:`TrainConfig`'s fields.

Each key's row is its help text (the one ``idresnet train --help`` prints) with its
default, plus the note of :data:`NOTES` where the docs say more than a help line can.
The generated parts of a Markdown file sit between ``<!-- generated: NAME ... -->`` and
``<!-- end generated -->``; tests/docs check that they are current. To rewrite them::

    python -m idresnet.training.keydocs            # docs/training.md of this checkout
    python -m idresnet.training.keydocs --check    # exit 1 (and say which part) if stale
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import MISSING
from pathlib import Path

from idresnet.files import atomic_write_bytes
from idresnet.training.config import FIELDS, RESUME_MUTABLE
from idresnet.training.recipe import recipe_default

DOC = Path(__file__).resolve().parents[3] / "docs" / "training.md"

# What the docs add to a key's help text (links, consequences, measured reasons).
NOTES = {
    "model_kwargs": "the options of `create_model`: depth, width, placement, shortcut, shortcut_scale, "
    "residual_scale, gate_bias, dropout_ratio, downsample, ... ([models.md](models.md))",
    "dataset": "see [data.md](data.md); `synthetic` needs no files; `imagenet` reads `--data DIR` ([below](#imagenet))",
    "train_size": "seeded by `seed`",
    "test_size": "seeded by `seed`",
    "val_split": "a multiple of the number of classes, each class keeping an image to train on (else a one-line "
    "error before training); from the training images after `train_size`, seeded by `seed` (nothing else the run "
    "draws changes), recorded in `val_split.json` and checked on resume; the normalisation is of the images trained "
    "on; `best_*` in status.json is then the validation set's; He et al. (2015) chose the CIFAR schedule on a "
    "45k/5k split (`--val-split 5000`); [below](#a-validation-split)",
    "normalization": "imagenet: ImageNet's mean and std; `pixel` is not available for imagenet",
    "workers": "[below](#imagenet)",
    "augmentation": "[below](#imagenet)",
    "tta": "the single-crop `test_error` stays the run's result; the TTA's is `test_error_flip` / "
    "`test_error_tencrop` in metrics.csv and `final_tta` in status.json; may change on resume; "
    "[below](#test-time-augmentation)",
    "batch_size": "each of N processes gets batch_size / N",
    "lr_milestones": "with `iterations` N given: N/2 and 3N/4 (the recipe's shape, as `budget` scales it)",
    "warmup_iters": "CIFAR: lr 0.01 for the first 400 iterations, then back to 0.1; with `iterations` N given, "
    "400 x N / 64000 (rounded: 200 iterations warm up for 1), as `budget` scales it. A warm-up that reaches the "
    "first milestone (or the end) of an iteration schedule is a one-line error",
    "warmup_until_error": "checked every 10 iterations over their batches; the longest warm-up (warmup_iters) "
    "defaults to the first milestone; the iteration where it ended is `warmup_end` in status.json "
    "([below](#the-recipe-defaults))",
    "schedule_unit": "`epoch` uses `epochs` and `epoch_milestones` (default 1/2 and 3/4 of `epochs`; "
    "imagenet: 90 epochs, milestones 1/3 and 2/3, i.e. 30 and 60)",
    "eval_interval": "fewer evaluations when they would cost more than ~10% of training (a 1% CIFAR run, "
    "640 iterations, evaluates twice); also after the last iteration",
    "fail_threshold": 'the paper\'s "fail" (status `failed`, exit 1); the full schedule is budget >= 1: '
    "64k CIFAR iterations or 90 ImageNet epochs; an unjudged run ends `finished` with a `message` saying so "
    "and how much it trained (`a reduced schedule (200 of 64,000 iterations)`, `(6,400 of 64,000 iterations, "
    "budget 0.1)`)",
    "seed": "also the class-balanced subsets",
    "channels_last": "on the CPU too, measured faster ([below](#speed-options))",
    "amp": "`auto` on the CPU picks bf16 only where a start-up probe measures it 1.2x faster and bf16 is "
    "shown to match float32 over a full schedule (not yet: float32), and says why ([performance.md](performance.md)); "
    "`bf16` on a CPU that torch does not count as bf16-capable (AVX2 or older, or "
    "`ONEDNN_MAX_CPU_ISA` capped to AVX2 or below) prints a warning: it is emulated there, 9x slower "
    "([performance.md](performance.md))",
    "threads": "config.yaml keeps the key as given and records the number used in `run_info.threads` and "
    "`device_name`; on a 2-core machine with both cores busy, 2 threads were 1.3-1.9x slower than 1 "
    "at batch 128 and up to 100x at batch 8 ([performance.md](performance.md#threads-on-a-shared-machine))",
    "malloc": "glibc otherwise maps freed activations anew each step and the kernel faults in and "
    "zeroes their pages: steps up to 1.35x slower measured on an AMD Zen 4 (the compiled ResNet-164 step); "
    "numerically identical; `run_info.malloc` records what was applied "
    "([performance.md](performance.md#page-faults-freed-memory-kept-in-the-process))",
    "activation_checkpointing": "keeps only segment inputs and recomputes in backward (BN statistics "
    "updated once; identical results); see [performance.md](performance.md)",
    "sync_bn": "no effect with one process",
    "resume": "see [Checkpoints and resuming](#checkpoints-and-resuming); `auto`, the form for batch jobs: "
    "[Batch jobs and restarts](#batch-jobs-and-restarts)",
    "progress": "off a terminal (a log file, a pipe, a batch job) a plain progress line at least every 30 s "
    "(`IDRESNET_PROGRESS_INTERVAL` seconds) in every phase (data load and decoding, training, evaluation; "
    "`idresnet eval` and `export` too), also while one step or test batch takes longer than that (a heartbeat "
    "prints whenever nothing else has for the interval), and one line per evaluation; the line's `loss` is the "
    "mean train loss since the last metrics row on rank 0, shown from the first step (refreshed at most every "
    "5 s; metrics.csv's rows are unchanged); `--no-progress`: nothing but warnings and the result",
    "logger": "wandb and mlflow are set up by their environment variables (`WANDB_MODE=offline`, "
    "`MLFLOW_TRACKING_URI`, default `sqlite:///RUN/mlflow.db`); see [Experiment trackers](#experiment-trackers)",
}


def default_text(name: str) -> str | None:
    """A field's default as text (the recipe's per dataset); None where it is none."""
    f = FIELDS[name]
    if f.metadata["recipe"]:
        return recipe_default(name) or "from the recipe"
    value = f.default_factory() if f.default_factory is not MISSING else f.default
    if value is None or value is MISSING:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def key_table() -> str:
    """One row per config key: key, default, help text (and note)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for name, f in FIELDS.items():
        default = default_text(name)
        shown = "(required)" if name == "model" else f"`{default}`" if default is not None else "none"
        meaning = f.metadata["help"] + (f"; {NOTES[name]}" if name in NOTES else "")
        rows.append(f"| `{name}` | {_cell(shown)} | {_cell(meaning)} |")
    return "\n".join(rows)


def resume_mutable() -> str:
    """The keys ``--resume`` may change."""
    return ", ".join(f"`{name}`" for name in RESUME_MUTABLE)


SECTIONS = {"keys": key_table, "resume-mutable": resume_mutable}
_PART = re.compile(r"(<!-- generated: ([\w-]+) [^\n]*-->\n)(.*?)(<!-- end generated -->)", re.S)


def render(text: str) -> str:
    """``text`` with every generated part rewritten; an unknown part's name is a KeyError."""
    return _PART.sub(lambda m: m.group(1) + SECTIONS[m.group(2)]() + "\n" + m.group(4), text)


def stale_parts(text: str) -> list[str]:
    """Names of the generated parts of ``text`` that differ from what :func:`render` writes."""
    return [m.group(2) for m in _PART.finditer(text) if m.group(3) != SECTIONS[m.group(2)]() + "\n"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m idresnet.training.keydocs", description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=DOC, help=f"the Markdown file (default: {DOC})")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a generated part is stale")
    args = parser.parse_args(argv)
    text = args.path.read_text()
    stale = stale_parts(text)
    if args.check:
        for name in stale:
            print(f"{args.path}: generated part {name!r} is stale; run python -m idresnet.training.keydocs")
        return 1 if stale else 0
    if stale:
        atomic_write_bytes(args.path, render(text).encode())
    print(f"{args.path}: " + (f"rewrote {', '.join(stale)}" if stale else "up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
