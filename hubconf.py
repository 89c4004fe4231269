"""torch.hub entry points of idresnet: one per registered network (``idresnet.list_models()``).

    torch.hub.load("OWNER/REPO", "preact_resnet110", pretrained=True)  # the repository on GitHub
    torch.hub.list("OWNER/REPO"), torch.hub.help("OWNER/REPO", "preact_resnet110")
    torch.hub.load("/path/to/idresnet", "preact_resnet110", source="local", pretrained=True)  # a checkout

Each entry is ``idresnet.create_model(name, pretrained=..., **kwargs)``: ``pretrained=True``
loads the project's published weights, verified by SHA-256 (docs/pretrained.md, "torch.hub
and published weights"). The checkout's ``src/`` goes first on ``sys.path``, so that the
idresnet of this checkout is the one imported (torch.hub fetches the repository, not an
installed package); only what building a network and reading its weights need is imported.
"""

import os as _os
import sys as _sys
import warnings as _warnings

_SRC = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "src")
if _SRC not in _sys.path:
    _sys.path.insert(0, _SRC)

import idresnet as _idresnet  # noqa: E402
from idresnet.progress import quiet as _quiet  # noqa: E402
from idresnet.weights.published import published_models as _published_models  # noqa: E402
from idresnet.weights.published import table as _table  # noqa: E402

if not _os.path.realpath(_idresnet.__file__).startswith(_os.path.realpath(_SRC) + _os.sep):
    _warnings.warn(
        f"hubconf: idresnet was imported before from {_idresnet.__file__}; its entries are used, not {_SRC}'s",
        stacklevel=2,
    )

dependencies = ["torch", "safetensors"]


def _doc(name: str) -> str:
    info = _idresnet.model_info(name)
    rows = _table()[1]
    weights = (
        f"True: idresnet's published weights, {rows[name].about}"
        if name in rows
        else f"True: none published for {name} (published: {', '.join(_published_models())})"
    )
    return (
        f"{name}: {info['description']} (He et al. 2016, idresnet).\n\n"
        f"    pretrained: False (He initialisation), {weights}; or the path of a weights file\n"
        "    progress: report a download's progress (default True)\n"
        "    kwargs: num_classes and the model options of idresnet.create_model (docs/models.md)\n"
    )


def _entry(name: str):
    def entry(pretrained=False, progress=True, **kwargs):
        with _quiet(not progress):
            return _idresnet.create_model(name, pretrained=pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = _doc(name)
    return entry


for _name in _idresnet.list_models():
    globals()[_name] = _entry(_name)
