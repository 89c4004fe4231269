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
            name,
            info["family"],
            str(info["depth"]),
            info["block"],
            info["placement"],
            "-".join(map(str, info["units_per_stage"])),
            f"{info['params']:,}",
        )


def format_table(table, markdown=False, columns=COLUMNS) -> str:
    """Rows as aligned text (numbers right-aligned) or as a Markdown table."""
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in table])
    widths = [max(len(str(r[i])) for r in [columns, *table]) for i in range(len(columns))]

    def fmt(row):
        numeric = lambda c: str(c).replace(",", "").replace(".", "").replace("e-", "").replace("-", "").isdigit()
        return "  ".join(str(c).rjust(w) if numeric(c) else str(c).ljust(w) for c, w in zip(row, widths))

    return "\n".join([fmt(columns)] + [fmt(r) for r in table])


def run(args) -> int:
    print(format_table(list(rows(args.family)), args.markdown))
    return 0
