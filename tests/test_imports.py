"""The import graph between idresnet's packages: lower layers never import higher ones.

Every module under src/idresnet is parsed with ``ast``; every import statement counts,
those inside functions too. A module may import its own package freely and the packages
of lower layers; never one of its own layer or above. The layers, from the bottom, are
the rule (written down from the code as it is after issue #12 moved activation
checkpointing and per-unit compilation from perf/ to networks/):

==========================  ==================================================================
layer                       packages (what they may import: the rows above)
==========================  ==================================================================
0 base                      errors, files, progress, seeding, signals
1                           units
2                           networks (ResNet, families, registry, checkpointing, compiling)
3 top-level API             idresnet (``__init__.py``: create_model, list_models, model_info)
4                           data
5                           training
6                           pretrained, analysis
7 tools                     experiments, perf
8                           cli
==========================  ==================================================================

The few upward imports that exist (lazy, inside one function each) are listed in
``KNOWN_UPWARD`` with the reason; the list may only shrink.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "idresnet"

LAYERS = [
    {"errors", "files", "progress", "seeding", "signals"},
    {"units"},
    {"networks"},
    {"idresnet"},  # the top-level package: re-exports networks' registry
    {"data"},
    {"training"},
    {"pretrained", "analysis"},
    {"experiments", "perf"},
    {"cli"},
]
LAYER = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}

# (module, package it imports from a layer not below its own): why. Remove a line when its
# import goes; do not add one (move the code down instead, or pass the function in).
KNOWN_UPWARD = {
    ("networks/registry.py", "pretrained"): "create_model(pretrained=PATH) loads weights via pretrained.loading",
    ("networks/registry.py", "data"): "pretrained_cfg of ImageNet nets takes data.transforms' mean and std",
}


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


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("units", {"networks", "data", "training", "perf", "cli"}),
        ("networks", {"perf", "training", "cli", "experiments", "analysis"}),
        ("data", {"cli", "experiments", "perf"}),
        ("training", {"cli", "experiments", "perf", "analysis", "pretrained"}),
        ("perf", {"cli", "experiments"}),
    ],
)
def test_no_import_runs_upward_from(package, forbidden):
    """The edges issue #12 cares about, spelled out (the rule above implies them)."""
    imported = set().union(*(deps for module, deps in graph().items() if module.startswith(f"{package}/")))
    assert imported & forbidden == set()
