"""``idresnet train``: train a network with the paper's recipe (see docs/training.md).

Every config key is a flag (``lr_milestones`` is ``--lr-milestones``); ``-c FILE.yaml``
reads keys from a file and flags override it. ``--resume --out RUN`` continues a run
from its last checkpoint, reading its recorded config (flags may change only what
resuming allows); ``--resume auto --out RUN`` continues it if there is one and starts it
otherwise (the form for batch jobs and ``torchrun --max-restarts``, re-run unchanged).
Works the same under ``torchrun --nproc_per_node=N``.

Exit status: 0 finished, 1 failed (final test error above --fail-threshold, the
paper's "fail"), 3 diverged (non-finite loss), 130 interrupted (resumable), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT = {"finished": 0, "failed": 1, "diverged": 3, "interrupted": 130}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; values are parsed and checked by the config."""
    from idresnet.training.config import FIELDS
    from idresnet.training.keydocs import default_text

    for name, f in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        kind, choices = f.metadata["kind"], f.metadata["choices"]
        help_ = f.metadata["help"].replace("%", "%%")
        if (default := default_text(name)) is not None:
            help_ += f" (default: {default})"
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_)
        elif kind == "auto_bool":  # --flag (true), --flag auto (or true, false: parsed by the config), --no-flag
            parser.add_argument(flag, nargs="?", const=True, metavar="auto", default=argparse.SUPPRESS, help=help_)
            parser.add_argument(
                "--no-" + flag[2:], dest=name, action="store_false", default=argparse.SUPPRESS, help=f"{flag} false"
            )
        elif kind in ("int_list", "opt_int_list", "dict", "choice_list"):
            metavar = {"dict": "KEY=VALUE", "choice_list": "{" + ",".join(choices or ()) + "}"}.get(kind, "N")
            parser.add_argument(flag, nargs="+", metavar=metavar, default=argparse.SUPPRESS, help=help_)
        else:
            metavar = "{" + ",".join(choices) + "}" if choices else name.upper()
            parser.add_argument(flag, metavar=metavar, default=argparse.SUPPRESS, help=help_)


def add_parser(subparsers, name):
    parser = subparsers.add_parser(
        name,
        help="train a network (the paper's recipe by default)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("-c", "--config", metavar="FILE.yaml", help="read config keys from this file")
    add_config_flags(parser)
    parser.set_defaults(func=run)
    return parser


def config_from_args(args):
    """The TrainConfig of parsed arguments: file keys, then flags; a resumed run's
    recorded config is the base when no file is given."""
    from idresnet.training import load_config
    from idresnet.training.config import FIELDS, parse_scalar
    from idresnet.training.rundir import CONFIG, holds_run, no_run_to_continue

    overrides = {k: v for k, v in vars(args).items() if k in FIELDS}
    path = args.config
    resume = overrides.get("resume")
    resume = parse_scalar(resume) if isinstance(resume, str) else resume
    auto = isinstance(resume, str) and resume.strip().lower() == "auto"
    if path is None and (resume is True or auto) and overrides.get("out"):
        out = Path(overrides["out"])
        if holds_run(out):
            if auto:  # there is a run: continue it as --resume does (from its recorded config)
                overrides["resume"] = True
            recorded = out / CONFIG
            path = recorded if recorded.is_file() else None
        elif not auto:  # before the config's own checks: the model is in the run's record
            raise no_run_to_continue(out)
    return load_config(path, overrides)


def run(args) -> int:
    from idresnet.training import train
    from idresnet.training.distributed import from_env

    result = train(config_from_args(args))
    if not from_env().is_main:
        return EXIT[result.status]
    if result.status == "interrupted":
        print(
            f"interrupted at iteration {result.iterations}; continue with: idresnet train "
            f"--resume --out {result.run_dir}",
            file=sys.stderr,
        )
    else:
        pct = lambda v: "-" if v is None else f"{v:.2f}%"
        if result.evaluated_on == "val":  # the test set once, at the end; the best is the validation set's
            best = f"validation error final {pct(result.final_val_error)}, best {pct(result.best_val_error)}"
        else:
            best = f"best {pct(result.best_test_error)}"
        tta = result.final_tta
        tta_text = f", {tta['method']} TTA {pct(tta['top1'])} (not the paper's protocol)" if tta else ""
        print(
            f"{result.status}: {result.run_dir} after {result.iterations} iterations, "
            f"final test error {pct(result.final_test_error)}{tta_text}, {best}, {result.wall_time_s:.0f} s"
        )
    return EXIT[result.status]
