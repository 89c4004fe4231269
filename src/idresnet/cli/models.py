"""``idresnet models``: the registered networks with their structure and size."""

from __future__ import annotations

from idresnet.networks import list_models, model_info

COLUMNS = ("name", "family", "depth", "block", "placement", "units/stage", "params")


def add_parser(sub, name):
    p = sub.add_parser(name, help="list the registered networks", description=__doc__)
    p.add_argument("--family", choices=("cifar", "imagenet"), help="only this family")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=run)


def rows(family=None):
    for name in list_models(family):
        info = model_info(name, with_params=True)
        yield (
            name, info["family"], str(info["depth"]), info["block"], info["placement"],
            "-".join(map(str, info["units_per_stage"])), f"{info['params']:,}",
        )


def format_table(table, markdown=False) -> str:
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in table])
    widths = [max(len(str(r[i])) for r in [COLUMNS, *table]) for i in range(len(COLUMNS))]
    fmt = lambda r: "  ".join(str(c).rjust(w) if i >= 6 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(COLUMNS)] + [fmt(r) for r in table])


def run(args) -> int:
    print(format_table(list(rows(args.family)), args.markdown))
    return 0
