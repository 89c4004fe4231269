"""Test-set evaluation, and loading trained weights back into a network.

Errors are in %: top-1 always, top-5 where there are more than 5 classes. Under
several processes each rank evaluates its shard of the test set and the sums are
reduced, so every test image counts exactly once.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from idresnet.errors import UsageError
from idresnet.training import distributed, rundir
from idresnet.training.checkpoint import load_checkpoint, load_weights
from idresnet.training.runtime import autocast


@torch.no_grad()
def evaluate(model: nn.Module, loader, *, device, amp_dtype=None,
             info: distributed.DistInfo | None = None) -> dict:
    """``{loss, error, top5_error, images}`` of ``model`` on ``loader`` (eval mode)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, wrong@1, wrong@5, n
    classes = torch.zeros(1, dtype=torch.float64, device=device)  # known here only after a batch
    for x, y in loader.epoch(0):
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
    return state, meta, file


def _guess_num_classes(state: dict) -> int:
    matrices = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    if not matrices:
        raise UsageError("cannot tell the number of classes from the weights; pass --num-classes")
    return int(matrices[-1].shape[0])


def build_trained(state: dict, meta: dict, model: str | None = None,
                  model_kwargs: dict | None = None, num_classes: int | None = None) -> nn.Module:
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
        raise UsageError(f"the weights do not fit {name}{' ' + str(kwargs) if kwargs else ''}: "
                         f"{'; '.join(problems)}")
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
        out.append(f"{len(shapes)} of another shape (first {k}: {tuple(given[k].shape)}, "
                   f"network has {tuple(expected[k].shape)})")
    return out
