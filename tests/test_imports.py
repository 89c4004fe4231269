"""The import graph between idresnet's packages: lower layers never import higher ones.

Every module under src/idresnet is parsed with ``ast``; every import statement counts,
those inside functions too. A module may import its own package freely and the packages
of lower layers; never one of its own layer or above. The layers, from the bottom, are
the rule (written down from the code as it is after issue #24 gave weight files their
own package and made the registry a leaf; docs/architecture.md explains them):

==========================  ==================================================================
layer                       packages (what they may import: the rows above)
==========================  ==================================================================
0 base                      errors, files, progress, seeding, signals, version
1                           units, weights (weights record, safetensors, checkpoints, run files)
2                           networks (ResNet, families, registry, checkpointing, compiling)
3                           factory (create_model: pretrained=, checkpoint_path=, in_chans=)
4 top-level API             idresnet (``__init__.py``: create_model, list_models, model_info)
5                           data
6                           training
7                           pretrained, analysis
8 tools                     experiments, perf
9                           cli
==========================  ==================================================================

No upward import is allowed (there is no list of exceptions: move the code down instead,
or pass the function in), and the packages' graph has no cycle.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "idresnet"

LAYERS = [
    {"errors", "files", "progress", "seeding", "signals", "version"},
    {"units", "weights"},
    {"networks"},
    {"factory"},
    {"idresnet"},  # the top-level package: re-exports the factory's create_model and the registry
    {"data"},
    {"training"},
    {"pretrained", "analysis"},
    {"experiments", "perf"},
    {"cli"},
]
LAYER = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}

# (module, package it imports from a layer not below its own): why. Empty since issue #24;
# do not add a line (move the code down instead, or pass the function in).
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def package_of(path: Path) -> str:
    """``units/spec.py`` -> units, ``errors.py`` -> errors, ``__init__.py`` -> idresnet."""
    rel = path.relative_to(SRC)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return "idresnet" if rel.stem == "__init__" else rel.stem


def imported_packages(path: Path) -> set[str]:
    """The idresnet packages (first component below ``idresnet``) that ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(SRC.parent).with_suffix("").parts  # ("idresnet", "perf", "runner")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = rel[: len(rel) - node.level]
                base = ".".join([*anchor, base] if base else anchor)
            modules = [(base, [a.name for a in node.names])]
        else:
            continue
        for module, names in modules:
            parts = module.split(".")
            if parts[0] != "idresnet":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # import idresnet / from idresnet import x: a submodule, or the top-level API
                found.update(
                    n if (SRC / n).is_dir() or (SRC / f"{n}.py").exists() else "idresnet"
                    for n in (names or ["idresnet"])
                )
    return found


def graph() -> dict[str, set[str]]:
    """``{module path relative to src/idresnet: other idresnet packages it imports}``."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        own = package_of(path)
        out[path.relative_to(SRC).as_posix()] = {p for p in imported_packages(path) if p != own}
    return out


def test_every_package_has_a_layer():
    packages = {package_of(p) for p in SRC.rglob("*.py")}
    assert packages - set(LAYER) == set(), "place the new package in LAYERS"
    assert set(LAYER) - packages == set(), "a package of LAYERS is gone"


def test_lower_layers_never_import_higher_ones():
    upward = {
        (module, pkg)
        for module, imported in graph().items()
        for pkg in imported
        if LAYER[pkg] >= LAYER[package_of(SRC / module)]
    }
    new = sorted(upward - set(KNOWN_UPWARD))
    assert not new, f"imports from the same or a higher layer: {new}"
    gone = sorted(set(KNOWN_UPWARD) - upward)
    assert not gone, f"these upward imports are gone: remove them from KNOWN_UPWARD: {gone}"


def package_graph() -> dict[str, set[str]]:
    """``{package: the other idresnet packages its modules import}``."""
    out: dict[str, set[str]] = {}
    for module, imported in graph().items():
        out.setdefault(package_of(SRC / module), set()).update(imported)
    return out


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``edges`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, str] = {}  # visiting | done

    def visit(node, path):
        state[node] = "visiting"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "visiting":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_cycle_between_packages():
    assert find_cycle(package_graph()) is None


def test_pretrained_weights_load_without_the_engine_or_the_data(tmp_path):
    """``create_model(name, pretrained=PATH)`` reads one safetensors file: it loads no module
    of idresnet.training or idresnet.data (issue #24: it loaded the engine and the data
    loaders, 49 idresnet modules), in a fresh process."""
    import subprocess
    import sys

    import idresnet
    from idresnet.weights import WeightsRecord, save_weights

    net = idresnet.create_model("preact_resnet20", width=0.25)
    path = tmp_path / "w.safetensors"
    save_weights(path, net.state_dict(), WeightsRecord(model="preact_resnet20", model_kwargs={"width": 0.25}))
    probe = (
        "import sys, idresnet\n"
        f"idresnet.create_model('preact_resnet20', pretrained={str(path)!r})\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'idresnet')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = out.split()
    assert [m for m in loaded if m.startswith(("idresnet.training", "idresnet.data"))] == []
    assert "idresnet.weights.weightfile" in loaded
    assert len(loaded) <= 25, loaded


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("units", {"networks", "data", "training", "perf", "cli", "weights"}),
        ("weights", {"units", "networks", "factory", "data", "training", "pretrained", "perf", "cli"}),
        ("networks", {"perf", "training", "cli", "experiments", "analysis", "pretrained", "data", "weights"}),
        ("factory", {"data", "training", "pretrained", "cli"}),
        ("data", {"cli", "experiments", "perf"}),
        ("training", {"cli", "experiments", "perf", "analysis", "pretrained"}),
        ("perf", {"cli", "experiments"}),
    ],
)
def test_no_import_runs_upward_from(package, forbidden):
    """The edges issue #12 cares about, spelled out (the rule above implies them)."""
    imported = set().union(*(deps for module, deps in graph().items() if module.startswith(f"{package}/")))
    assert imported & forbidden == set()
