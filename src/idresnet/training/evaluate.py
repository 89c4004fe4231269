"""Test-set evaluation, and loading trained weights back into a network.

Errors are in %: top-1 always, top-5 where there are more than 5 classes. Under
several processes each rank evaluates its shard of the test set and the sums are
reduced, so every test image counts exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from idresnet.errors import UsageError
from idresnet.progress import progress
from idresnet.training import distributed, rundir
from idresnet.training.checkpoint import load_checkpoint, load_weights
from idresnet.training.runtime import autocast


class EvaluationStopped(Exception):
    """A stop request (Ctrl-C, SIGTERM) came during an evaluation: it was abandoned."""


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    *,
    device,
    amp_dtype=None,
    info: distributed.DistInfo | None = None,
    report: bool = False,
    announce: bool = False,
    stop: Callable[[], bool] | None = None,
) -> dict:
    """``{loss, error, top5_error, images}`` of ``model`` on ``loader`` (eval mode).

    ``report``: plain progress lines while it runs (for logs: a long evaluation is not silence),
    from its start when ``announce``.
    ``stop``: asked before every batch and after the last; True abandons the evaluation
    (:class:`EvaluationStopped`), so that a Ctrl-C is answered within one batch.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, wrong@1, wrong@5, n
    classes = torch.zeros(1, dtype=torch.float64, device=device)  # known here only after a batch
    bar = progress(len(loader), desc="evaluating", unit="batch", enabled=report, bar=False, announce=announce)
    batches = loader.epoch(0)
    try:
        for x, y in batches:
            if stop is not None and stop():
                raise EvaluationStopped
            bar.update()
            with autocast(device, amp_dtype):
                logits = model(x)
            logits = logits.float()
            classes.fill_(logits.shape[1])
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hit = top == y[:, None]
            sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
            sums[1] += (~hit[:, 0]).sum()
            sums[2] += (~hit.any(1)).sum()
            sums[3] += y.numel()
        if stop is not None and stop():
            raise EvaluationStopped
    finally:
        getattr(batches, "close", lambda: None)()  # an abandoned streamed epoch stops its workers now
        bar.close()
        model.train(was_training)
    if info is not None:  # a rank may have had no batch (a tiny shard, damaged files only)
        distributed.all_reduce_(sums, info)
        distributed.all_reduce_(classes, info, op=torch.distributed.ReduceOp.MAX)
    loss, wrong1, wrong5, n = sums.tolist()
    n = max(n, 1)
    top5 = 100.0 * wrong5 / n if classes.item() > 5 else None
    return {"loss": loss / n, "error": 100.0 * wrong1 / n, "top5_error": top5, "images": int(n)}


# ---------------------------------------------------------------- trained weights


def find_weights(path: str | Path) -> Path:
    """A run folder's final weights (or, unfinished, its checkpoint), or the file itself."""
    path = Path(path)
    if path.is_dir():
        for name in (rundir.WEIGHTS, rundir.CHECKPOINT):
            if (path / name).is_file():
                return path / name
        raise UsageError(f"{path} holds neither {rundir.WEIGHTS} nor {rundir.CHECKPOINT}")
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", str(path))
    return path


def read_trained(path: str | Path) -> tuple[dict, dict, Path]:
    """``(state_dict, metadata, file)`` of a run folder, a .safetensors or a .ckpt file."""
    file = find_weights(path)
    if file.suffix == ".safetensors":
        state, meta = load_weights(file)
    elif file.suffix in (".ckpt", ".pt", ".pth"):
        ckpt = load_checkpoint(file)
        state, meta = ckpt["model"], dict(ckpt.get("meta") or {})
        meta.setdefault("iteration", ckpt.get("iteration"))
    else:
        raise UsageError(f"--weights {file}: expected a run folder, a .safetensors or a .ckpt file")
    check_meta(meta, file)
    return state, meta, file


MAX_CLASSES = 1_000_000


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _norm_problem(norm) -> str | None:
    if not isinstance(norm, dict):
        return "a mapping with kind, mean and std"
    if norm.get("kind", "channel") not in ("channel", "pixel"):
        return "kind channel or pixel"
    for key, low in (("mean", -math.inf), ("std", 0.0)):
        v = norm.get(key)
        if not (isinstance(v, list) and len(v) == 3 and all(_is_number(x) and x > low for x in v)):
            return f"{key}: three finite numbers" + (" > 0" if key == "std" else "")
    pixel = norm.get("pixel_mean")
    if pixel is not None and not isinstance(pixel, list):
        return "pixel_mean: none or a nested list of numbers"
    return None


def check_meta(meta: dict, file: Path) -> None:
    """A one-line UsageError when a weight file's record is malformed (it may be crafted):
    every value that builds a network or feeds the data is checked before use."""

    def bad(key, what):
        return UsageError(f"{file}: recorded {key} {str(meta.get(key))[:60]!r} is not valid; expected {what}")

    if meta.get("model") is not None and not isinstance(meta["model"], str):
        raise bad("model", "a model name")
    if meta.get("model_kwargs") is not None and not (
        isinstance(meta["model_kwargs"], dict) and all(isinstance(k, str) for k in meta["model_kwargs"])
    ):
        raise bad("model_kwargs", "a mapping of model options")
    n = meta.get("num_classes")
    if n is not None and not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_CLASSES):
        raise bad("num_classes", f"an integer in [1, {MAX_CLASSES}]")
    classes = meta.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise bad("classes", "a list of class names")
    if meta.get("normalization") is not None:
        problem = _norm_problem(meta["normalization"])
        if problem:
            raise bad("normalization", problem)
    shape = meta.get("image_shape")
    if shape is not None and not (
        isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and 1 <= v <= 100_000 for v in shape)
    ):
        raise bad("image_shape", "[height, width, channels], positive integers")
    if meta.get("dataset_args") is not None and not isinstance(meta["dataset_args"], dict):
        raise bad("dataset_args", "a mapping")


def _guess_num_classes(state: dict) -> int:
    matrices = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    if not matrices:
        raise UsageError("cannot tell the number of classes from the weights; pass --num-classes")
    return int(matrices[-1].shape[0])


def build_trained(
    state: dict, meta: dict, model: str | None = None, model_kwargs: dict | None = None, num_classes: int | None = None
) -> nn.Module:
    """The network named by ``model`` (default: the one recorded with the weights),
    with the weights loaded (strictly): a mismatch is a one-line UsageError."""
    from idresnet import create_model

    name = model or meta.get("model")
    if name is None:
        raise UsageError("the weights do not record their model; pass --model NAME")
    kwargs = model_kwargs
    if kwargs is None:  # the recorded options belong to the recorded model only
        kwargs = (meta.get("model_kwargs") or {}) if name == meta.get("model") else {}
    classes = num_classes or meta.get("num_classes") or _guess_num_classes(state)
    net = create_model(name, num_classes=classes, **kwargs)
    problems = mismatches(net.state_dict(), state)
    if problems:
        raise UsageError(f"the weights do not fit {name}{' ' + str(kwargs) if kwargs else ''}: {'; '.join(problems)}")
    net.load_state_dict(state, strict=True)
    return net.eval()


def mismatches(expected: dict, given: dict) -> list[str]:
    """Short descriptions of how a state dict differs from the one a network expects."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [k for k in expected if k in given and tuple(expected[k].shape) != tuple(given[k].shape)]
    out = []
    if missing:
        out.append(f"{len(missing)} tensor(s) missing (first {missing[0]})")
    if unexpected:
        out.append(f"{len(unexpected)} unexpected (first {unexpected[0]})")
    if shapes:
        k = shapes[0]
        out.append(
            f"{len(shapes)} of another shape (first {k}: {tuple(given[k].shape)}, "
            f"network has {tuple(expected[k].shape)})"
        )
    return out
