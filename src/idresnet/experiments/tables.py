"""The paper's tables as data: one YAML file per table (``tables/``), read and checked here.

A table file has ``name``, ``title``, ``figure``, ``dataset``, ``columns`` (row keys shown
as the table's descriptive columns, with their headings), optional ``scales`` (what
"reduced" and "smoke" mean for this table) and ``rows``. A row has an ``id``, the
``model`` and its ``model_kwargs``, optional ``dataset`` and ``recipe`` (training config
overrides, e.g. a batch size), and ``paper``: the paper's number, or ``fail``. Optional:
``paper_top5`` (the paper's top-5 error), ``eval_crop`` (report the error at this
evaluation crop of a streamed ImageNet run) and ``run`` (the run folder, when rows that
differ only in ``eval_crop`` share one trained network; their configs must be equal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from idresnet.errors import UsageError, choices_error

TABLES_PACKAGE = "idresnet.experiments"
PAPER_RUNS = "median of 5"  # what a table's paper numbers are, unless it says otherwise
ROW_KEYS = {"id", "model", "model_kwargs", "dataset", "recipe", "paper", "paper_mean", "paper_top5", "eval_crop", "run"}


@dataclass
class Row:
    id: str
    model: str
    paper: float | str  # a number (test error %) or "fail"
    dataset: str
    model_kwargs: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    paper_mean: str | None = None
    labels: dict = field(default_factory=dict)  # descriptive columns
    paper_top5: float | None = None
    eval_crop: int | None = None  # report the error at this evaluation crop
    run: str | None = None  # run folder name, shared by rows that train the same network

    @property
    def run_name(self) -> str:
        return self.run or self.id


@dataclass
class Table:
    name: str
    title: str
    figure: str | None
    dataset: str
    columns: dict  # row key -> heading
    rows: list[Row]
    scales: dict = field(default_factory=dict)
    path: Path | None = None
    paper_runs: str = PAPER_RUNS  # what the paper's numbers are

    def select(self, ids: list[str] | None) -> list[Row]:
        if not ids:
            return list(self.rows)
        known = {r.id: r for r in self.rows}
        for i in ids:
            if i not in known:
                raise choices_error(f"row of {self.name}", i, known)
        return [known[i] for i in ids]


def _tables_dir():
    return resources.files(TABLES_PACKAGE) / "tables"


def list_tables() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _tables_dir().iterdir() if p.name.endswith(".yaml"))


def load_table(name_or_path: str) -> Table:
    """A table by name (``table1``) or from a YAML file path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        if name_or_path not in list_tables():
            raise choices_error("table", name_or_path, list_tables())
        path = Path(str(_tables_dir() / f"{name_or_path}.yaml"))
    if not path.is_file():
        raise UsageError(f"no such table file: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise UsageError(f"{path} is not valid YAML") from None
    return parse_table(doc, path)


def parse_table(doc, path: Path | None = None) -> Table:
    where = path or "table"
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list) or not doc["rows"]:
        raise UsageError(f"{where}: a table needs a non-empty list of rows")
    for key in ("name", "title", "dataset"):
        if not isinstance(doc.get(key), str):
            raise UsageError(f"{where}: missing or invalid {key!r}")
    columns = doc.get("columns") or {}
    rows, seen = [], set()
    for raw in doc["rows"]:
        if not isinstance(raw, dict) or not {"id", "model", "paper"} <= set(raw):
            raise UsageError(f"{where}: every row needs id, model and paper: {raw!r}")
        unknown = set(raw) - ROW_KEYS - set(columns)
        if unknown:
            raise UsageError(f"{where}: row {raw['id']!r} has unknown key(s) {', '.join(sorted(unknown))}")
        paper = raw["paper"]
        if not (paper == "fail" or isinstance(paper, (int, float))):
            raise UsageError(f"{where}: row {raw['id']!r}: paper must be a number or 'fail', got {paper!r}")
        top5, crop = raw.get("paper_top5"), raw.get("eval_crop")
        if top5 is not None and (isinstance(top5, bool) or not isinstance(top5, (int, float))):
            raise UsageError(f"{where}: row {raw['id']!r}: paper_top5 must be a number, got {top5!r}")
        if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int)):
            raise UsageError(f"{where}: row {raw['id']!r}: eval_crop must be an integer, got {crop!r}")
        if raw["id"] in seen:
            raise UsageError(f"{where}: duplicate row id {raw['id']!r}")
        seen.add(raw["id"])
        rows.append(
            Row(
                id=str(raw["id"]),
                model=raw["model"],
                paper=paper,
                dataset=raw.get("dataset", doc["dataset"]),
                model_kwargs=dict(raw.get("model_kwargs") or {}),
                recipe=dict(raw.get("recipe") or {}),
                paper_mean=raw.get("paper_mean"),
                labels={k: str(raw.get(k, "")) for k in columns},
                paper_top5=top5,
                eval_crop=crop,
                run=None if raw.get("run") is None else str(raw["run"]),
            )
        )
    _check_shared_runs(rows, where)
    _check_scale_rows(doc.get("scales") or {}, {r.id for r in rows}, where)
    return Table(
        doc["name"],
        doc["title"],
        doc.get("figure"),
        doc["dataset"],
        dict(columns),
        rows,
        dict(doc.get("scales") or {}),
        path,
        str(doc.get("paper_runs", PAPER_RUNS)),
    )


def _check_shared_runs(rows: list[Row], where) -> None:
    """Rows sharing a run folder must train the same thing (they differ in eval_crop only)."""
    first = {}
    for row in rows:
        train = (row.model, row.model_kwargs, row.dataset, row.recipe)
        other = first.setdefault(row.run_name, (row.id, train))
        if other[1] != train:
            raise UsageError(
                f"{where}: rows {other[0]!r} and {row.id!r} share run {row.run_name!r} "
                "but train differently (model, model_kwargs, dataset or recipe)"
            )


def _check_scale_rows(scales: dict, ids: set, where) -> None:
    """A scale may shrink only rows the table has."""
    for name, scale in scales.items():
        unknown = set((scale or {}).get("rows") or {}) - ids
        if unknown:
            raise UsageError(f"{where}: scale {name!r} shrinks unknown row(s) {', '.join(sorted(unknown))}")
