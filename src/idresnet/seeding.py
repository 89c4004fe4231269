"""The seeding policy: every random stream is named by the run's seed, a purpose and the
coordinates of the draw, never by what was drawn before.

A stream's generator comes from numpy's ``SeedSequence([seed, *coordinates, purpose])``,
so streams of different purposes or coordinates never share state, a stream does not
depend on how many processes or workers draw from it, and resuming needs no generator
state for the data (its draws are functions of the epoch and the sample). The purposes
(fixed for good: changing one changes every run's data order or initial weights):

=============  ===============================  ======================================
purpose        coordinates                      what draws from it
=============  ===============================  ======================================
EPOCH          epoch                            an epoch's order, crops and flips
SAMPLE         epoch, sample index              one streamed image's augmentation
RANK           rank, iteration                  a process's own draws (dropout) under DDP
SUBSET         (none)                           class-balanced dataset subsets
SYNTHETIC      (none)                           the generated synthetic dataset
=============  ===============================  ======================================

Initial weights come from torch's global generator, seeded by :func:`seed_everything`.
The global generators' states (:func:`rng_state`, :func:`set_rng_state`) travel in a
run's checkpoints: dropout draws from them.
"""

from __future__ import annotations

import random

import numpy as np
import torch

EPOCH, SAMPLE, RANK, SUBSET, SYNTHETIC = 0x1DE5, 0x1A6E, 0xD2A, 0x5EB5E7, 0x5A17


def sequence(seed: int, purpose: int, *coordinates: int) -> np.random.SeedSequence:
    """The seed sequence of one stream."""
    return np.random.SeedSequence([int(seed) % (1 << 64), *(int(c) % (1 << 64) for c in coordinates), purpose])


def numpy_rng(seed: int, purpose: int, *coordinates: int) -> np.random.Generator:
    """A numpy generator of one stream."""
    return np.random.Generator(np.random.PCG64(sequence(seed, purpose, *coordinates)))


def torch_generator(seed: int, purpose: int, *coordinates: int) -> torch.Generator:
    """A torch CPU generator of one stream."""
    state = sequence(seed, purpose, *coordinates).generate_state(2)
    g = torch.Generator(device="cpu")
    g.manual_seed(int(state[0]) << 31 ^ int(state[1]))
    return g


def int_seed(seed: int, purpose: int, *coordinates: int) -> int:
    """A 32-bit integer seed of one stream (for ``torch.manual_seed``)."""
    return int(sequence(seed, purpose, *coordinates).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed the global generators (torch, numpy, Python): a run's initial weights."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng_state() -> dict:
    """The global RNG states (torch CPU and CUDA, numpy, Python) as tensors and plain types."""
    np_state: tuple = np.random.get_state()  # type: ignore[assignment]  # the legacy tuple form
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": py_state[0],
            "state": torch.tensor(py_state[1], dtype=torch.int64),
            "gauss_next": py_state[2],
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the global RNG states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)
