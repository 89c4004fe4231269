"""``idresnet reproduce TABLE``: train every row of one of the paper's tables and print
it beside the paper's numbers (Markdown and CSV in --out, with the table's figure).

Rows already finished in --out are skipped, interrupted ones resumed.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def thread_count(text: str):
    """``--threads``: auto or a number >= 1 (anything else: argparse's one-line error)."""
    if text.strip().lower() == "auto":
        return "auto"
    if int(text) < 1:
        raise ValueError(text)
    return int(text)


def add_parser(sub, name):
    p = sub.add_parser(name, help="re-run one of the paper's tables", description=__doc__)
    p.add_argument("table", nargs="?", help="table1 ... table5, or a table YAML file")
    p.add_argument("--list", action="store_true", help="list the tables and their rows")
    p.add_argument("--runs", type=int, default=1, help="runs per row, seeds 0..N-1 (the paper: 5)")
    p.add_argument("--scale", default="reduced", help="full (the paper's recipe), reduced (CPU budget), smoke")
    p.add_argument("--rows", nargs="+", default=None, metavar="ID", help="only these rows")
    p.add_argument("--out", default=None, help="output folder (default: runs/reproduce/<table>-<scale>)")
    p.add_argument(
        "--data",
        default=None,
        help="CIFAR-10 source: official archive, its folder, or an image "
        "folder such as cifar10-jpeg.tar.gz (default: cache, then download)",
    )
    p.add_argument(
        "--cifar100-data",
        default=None,
        help="CIFAR-100 source for the CIFAR-100 rows (table3, table4): cifar-100-python.tar.gz, its folder, "
        "or a CIFAR-100 image folder (default: cache, then download)",
    )
    p.add_argument(
        "--imagenet-data",
        default=None,
        metavar="DIR",
        help="ImageNet-layout folder (train/<wnid>/, val/<wnid>/) for the ImageNet rows (table5)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        choices=("cifar10", "synthetic"),
        help="run the CIFAR-10 rows on this dataset instead (synthetic: plumbing checks)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--threads",
        type=thread_count,
        default="auto",
        help="CPU threads of torch per run: N, or auto (the cores not busy at start; "
        "see `idresnet train --help`) (default: auto)",
    )
    p.set_defaults(func=run)


def list_all() -> int:
    from idresnet.experiments import list_tables, load_table

    for name in list_tables():
        table = load_table(name)
        print(f"{name}: {table.title}")
        for row in table.rows:
            print(f"  {row.id:32s} {row.model:24s} paper {row.paper}")
    return 0


DATA_FLAGS = {"cifar10": "--data", "cifar100": "--cifar100-data", "imagenet": "--imagenet-data"}


def describe(dataset: str, path, table, rows) -> str:
    """The dataset's description; loading (or, for ImageNet, indexing) checks it is there.
    A missing dataset is a one-line error naming its flag and, where the table has rows
    on other data, how to run those alone."""
    from idresnet.data import load_dataset, load_imagenet
    from idresnet.data.load import DatasetMissing
    from idresnet.data.sources import STREAMED, needs_data
    from idresnet.errors import UsageError

    others = [r.id for r in rows if r.dataset != dataset]
    alone = f"; to run the other rows alone: --rows {' '.join(others)}" if others else ""
    if dataset not in STREAMED:
        try:
            return load_dataset(dataset, path).description
        except DatasetMissing as exc:
            raise UsageError(
                f"{exc.reason}: the {dataset} rows of {table.name} need {DATA_FLAGS[dataset]} PATH, "
                f"{exc.sources}{alone}"
            ) from None
    if path is None:
        raise UsageError(f"the ImageNet rows need {needs_data(dataset, DATA_FLAGS[dataset])}{alone}")
    return load_imagenet(path).description


def run(args) -> int:
    from idresnet.errors import UsageError
    from idresnet.experiments import load_table, resolve_scale
    from idresnet.experiments.comparison import write_report
    from idresnet.experiments.reproduction import reproduce
    from idresnet.experiments.scales import describe_override, row_override

    if args.list:
        return list_all()
    if not args.table:
        raise UsageError("name a table (see `idresnet reproduce --list`)")
    if args.runs < 1:
        raise UsageError(f"--runs must be at least 1, got {args.runs}")
    table = load_table(args.table)
    scale = resolve_scale(args.scale, table.scales)
    rows = table.select(args.rows)
    if args.dataset == "synthetic":
        for row in rows:
            if row.dataset == "cifar10":
                row.dataset = "synthetic"
    data = {"cifar10": args.data, "cifar100": args.cifar100_data, "imagenet": args.imagenet_data}
    # check every dataset before training anything: a missing one is a one-line error now
    descriptions = {name: describe(name, data.get(name), table, rows) for name in sorted({r.dataset for r in rows})}
    out = Path(args.out or f"runs/reproduce/{table.name}-{args.scale}")
    out.mkdir(parents=True, exist_ok=True)
    print(f"{table.title}: {len(rows)} rows x {args.runs} runs at {args.scale} scale -> {out}")
    outcomes, wall = reproduce(
        table,
        rows,
        runs=args.runs,
        scale_name=args.scale,
        out=out,
        data=data,
        device=args.device,
        threads=args.threads,
    )
    command = (
        "idresnet " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if sys.argv[0].endswith("idresnet")
        else f"idresnet reproduce {args.table} --scale {args.scale} --runs {args.runs}"
    )
    settings = {r.id: describe_override(row_override(scale, r.id)) for r in rows if r.id in scale["rows"]}
    written = write_report(
        table,
        outcomes,
        scale_name=args.scale,
        scale_note=scale["note"],
        runs=args.runs,
        out=out,
        dataset_descriptions=descriptions,
        wall_s=wall,
        command=command,
        row_settings=settings,
    )
    print(written[0].read_text())
    print("wrote " + ", ".join(map(str, written)))
    return 0
