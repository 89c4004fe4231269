"""Reading back what wandb wrote offline: the records of a run's ``.wandb`` file.

The file is wandb's transaction log (what ``wandb sync`` uploads): a 7-byte header
(``:W&B``, 0xBEE1, version 0), then LevelDB-log blocks of 32 KiB whose chunks (CRC-32 of
type and data, length, type: full, first, middle, last) carry protobuf ``Record`` messages
of wandb's own ``wandb_internal_pb2``. wandb 0.31 ships no Python reader of its own.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

BLOCK, CHUNK_HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    """The ``Record`` messages of a ``.wandb`` file, in order (each chunk's CRC checked)."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<HB", data[4:7]) == (0xBEE1, 0), f"{path} is no wandb log"
    out, pending, pos = [], b"", 7
    while pos + CHUNK_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        body = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == 0 and length == 0:
            continue
        assert zlib.crc32(bytes([kind]) + body) == crc, f"{path}: damaged chunk before byte {pos}"
        pending += body
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def offline_runs(folder: Path) -> list[Path]:
    """The ``.wandb`` files under a WANDB_DIR (``wandb/offline-run-TIME-ID[-N]/run-ID.wandb``), oldest first."""
    return sorted(Path(folder).glob("wandb/offline-run-*/run-*.wandb"), key=lambda p: p.parent.name)


def read_run(path: Path) -> dict:
    """A ``.wandb`` file as {id, config, history: {step: {key: value}}, exit_code, preempting}."""
    run: dict = {"id": None, "config": {}, "history": {}, "exit_code": None, "preempting": False}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["id"] = record.run.run_id
            run["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            run["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            run["history"].setdefault(record.history.step.num, {}).update(items)
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
        elif kind == "preempting":
            run["preempting"] = True
    run["config"].pop("_wandb", None)
    return run
