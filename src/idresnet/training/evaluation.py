"""Test-set evaluation (reading trained weights is :mod:`idresnet.weights`).

Errors are in %: top-1 always, top-5 where there are more than 5 classes. Under
several processes each rank evaluates its shard of the test set and the sums are
reduced, so every test image counts exactly once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from idresnet.progress import progress
from idresnet.training import distributed
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
    dist: distributed.DistInfo | None = None,
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
    if dist is not None:  # a rank may have had no batch (a tiny shard, damaged files only)
        distributed.all_reduce_(sums, dist)
        distributed.all_reduce_(classes, dist, op=torch.distributed.ReduceOp.MAX)
    loss, wrong1, wrong5, n = sums.tolist()
    n = max(n, 1)
    top5 = 100.0 * wrong5 / n if classes.item() > 5 else None
    return {"loss": loss / n, "error": 100.0 * wrong1 / n, "top5_error": top5, "images": int(n)}
