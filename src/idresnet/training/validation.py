"""The run folder's record of its validation split, ``val_split.json`` (drawn by
:mod:`idresnet.data.validation` from the seed): written when a run starts, compared when
it resumes (a split that differs is refused: the run would validate on other images),
and compared between the processes of a run.
"""

from __future__ import annotations

import json
from pathlib import Path

from idresnet.data.validation import digest
from idresnet.errors import ConfigError
from idresnet.files import atomic_write_bytes
from idresnet.training import distributed
from idresnet.weights.runfiles import VAL_SPLIT


def write(run_dir: Path, record: dict) -> None:
    atomic_write_bytes(Path(run_dir) / VAL_SPLIT, (json.dumps(record) + "\n").encode())


def check_recorded(run_dir: Path, record: dict) -> str | None:
    """Refuse (one line) a resumed run whose recorded split is not ``record``, the one drawn
    now; a missing record is written again (the data's fingerprint was checked): the
    warning to print, else None."""
    path = Path(run_dir) / VAL_SPLIT
    if not path.is_file():
        write(run_dir, record)
        return f"{path} was missing: written again from the seed, for the run's data (its fingerprint matches)"
    try:
        recorded = json.loads(path.read_text())
        same = digest(recorded["indices"]) == recorded["sha256"] == record["sha256"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} is damaged (not the JSON record of a validation split); delete it to draw "
                          "the split again from the seed") from None  # fmt: skip
    if not same:
        raise ConfigError(
            f"--resume: the validation split recorded in {path} (sha256 {str(recorded.get('sha256'))[:12]}, "
            f"{len(recorded.get('indices') or ())} images) is not the one drawn now (sha256 "
            f"{record['sha256'][:12]}, {record['val_split']} images): the run would validate on other images; "
            "resume it with the idresnet version that started it"
        )
    return None


def check_ranks(record: dict | None, dist: distributed.DistInfo) -> None:
    """Every process drew the same split (each draws it from the seed): else one line, on every rank."""
    digests = distributed.gather(None if record is None else record["sha256"], dist)
    if len(set(digests)) > 1:
        shown = ", ".join(f"rank {r}: {str(d)[:12]}" for r, d in enumerate(digests))
        raise ConfigError(f"the processes drew different validation splits ({shown}); their data differs")
