"""The paper's experiments: tables as data, a generic runner, reports beside the paper."""

from idresnet.experiments.scales import SCALES, resolve_scale
from idresnet.experiments.tables import Row, Table, list_tables, load_table

__all__ = ["SCALES", "Row", "Table", "list_tables", "load_table", "resolve_scale"]
