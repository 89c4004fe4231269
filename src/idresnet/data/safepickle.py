"""A restricted unpickler for the CIFAR python batches.

The official CIFAR archives hold pickled dicts of bytes, ints, lists and one uint8
numpy array. A plain ``pickle.load`` would call any function a hostile file names, so
we admit only the few globals those files need (numpy's array reconstruction, the
``dtype`` constructor restricted to non-object dtypes, and ``_codecs.encode`` for
latin-1 bytes written by Python 3 at protocol 2). Anything else raises
:class:`DatasetError` before it is called.
"""

from __future__ import annotations

import codecs
import io
import pickle

import numpy as np

from idresnet.errors import DatasetError, one_line

_RECONSTRUCT = ("numpy.core.multiarray", "numpy._core.multiarray")
_FROMBUFFER = ("numpy.core.numeric", "numpy._core.numeric")


def _safe_dtype(spec, align=False, copy=False):
    dt = np.dtype(spec, align=bool(align), copy=bool(copy))
    if dt.hasobject:
        raise pickle.UnpicklingError("object dtype refused")
    return dt


def _safe_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} refused")
    return codecs.encode(text, "latin1")


def _safe_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays are admitted")
    return np.ndarray.__new__(np.ndarray, shape, _safe_dtype(dtype))


def _safe_frombuffer(buf, dtype, shape, order):
    arr = np.frombuffer(buf, dtype=_safe_dtype(dtype))
    return arr.reshape(shape, order=order)


class _Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        if module in _RECONSTRUCT and name == "_reconstruct":
            return _safe_reconstruct
        if module in _FROMBUFFER and name == "_frombuffer":
            return _safe_frombuffer
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return _safe_dtype
        if module == "_codecs" and name == "encode":
            return _safe_encode
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids refused")


def safe_loads(data: bytes, where: str):
    """Unpickle ``data`` admitting only CIFAR's plain types; ``where`` names the file.

    Python 2 strings decode as latin-1 (numpy's advice for Python 2 array pickles), so
    the official files give ``str`` keys and Python 3 files ``bytes`` keys.
    """
    try:
        return _Restricted(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DatasetError(
            f"{where}: refused to unpickle ({one_line(exc)}): not a plain CIFAR batch, possibly hostile"
        ) from None
    except Exception as exc:  # truncated or garbage pickles raise many types
        raise DatasetError(f"{where}: damaged pickle ({type(exc).__name__}: {one_line(exc)})") from None
