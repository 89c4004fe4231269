"""Builders for small datasets in the official layouts (used by tests/data only)."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar_batches(name: str = "cifar10", per_batch: int = 8, seed: int = 0) -> dict:
    """{member name: dict} of a small CIFAR archive with bytes keys, as Python 3 reads them."""
    rng = np.random.default_rng(seed)
    out = {}
    if name == "cifar10":
        out["batches.meta"] = {
            b"label_names": [c.encode() for c in CIFAR10],
            b"num_cases_per_batch": per_batch,
            b"num_vis": 3072,
        }
        for member in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            out[member] = {
                b"batch_label": member.encode(),
                b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                b"filenames": [b"x.png"] * per_batch,
            }
    else:
        out["meta"] = {
            b"fine_label_names": [f"fine{i:02d}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i:02d}".encode() for i in range(20)],
        }
        for member, n in (("train", 5 * per_batch), ("test", per_batch)):
            out[member] = {
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
                b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)],
            }
    return out


def write_cifar_archive(path: Path, batches: dict, name: str = "cifar10", raw: dict | None = None) -> Path:
    """A .tar.gz in the official layout; ``raw`` gives member bytes that replace pickles."""
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    members = {k: pickle.dumps(v, protocol=2) for k, v in batches.items()}
    members.update(raw or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for member, data in members.items():
            info = tarfile.TarInfo(f"{folder}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_cifar_folder(path: Path, batches: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for member, value in batches.items():
        (path / member).write_bytes(pickle.dumps(value, protocol=2))
    return path


def expected_images(batches: dict, members) -> np.ndarray:
    data = np.concatenate([batches[m][b"data"] for m in members])
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


# A pickle as Python 2's cPickle writes it (str keys as SHORT_BINSTRING, numpy 1.x
# array reconstruction from numpy.core.multiarray), built opcode by opcode.


def _py2_str(s: bytes) -> bytes:
    return (b"U" + bytes([len(s)]) + s) if len(s) < 256 else (b"T" + struct.pack("<I", len(s)) + s)


def _py2_int(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def _py2_array(a: np.ndarray) -> bytes:
    out = b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
    out += b"K\x00\x85" + _py2_str(b"b") + b"\x87R"
    out += b"(K\x01" + _py2_int(a.shape[0]) + _py2_int(a.shape[1]) + b"\x86"
    out += b"cnumpy\ndtype\n" + _py2_str(b"u1") + b"K\x00K\x01\x87R"
    out += b"(K\x03" + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + b"K\x00tb"
    out += b"\x89" + _py2_str(a.tobytes()) + b"tb"
    return out


def py2_pickle(d: dict) -> bytes:
    out = b"\x80\x02}("
    for k, v in d.items():
        out += _py2_str(k)
        if isinstance(v, np.ndarray):
            out += _py2_array(v)
        elif isinstance(v, bytes):
            out += _py2_str(v)
        elif isinstance(v, int):
            out += _py2_int(v)
        else:  # a list of ints or of bytes
            out += b"](" + b"".join(_py2_int(x) if isinstance(x, int) else _py2_str(x) for x in v) + b"e"
    return out + b"u."


def write_image(path: Path, colour, size=(32, 32), fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[0], size[1], 3), dtype=np.uint8)
    arr[:] = colour
    Image.fromarray(arr).save(path, format=fmt)


def image_folder(
    root: Path, classes=("cat", "ant", "bee"), per_class=(3, 2), splits=("train", "test"), size=(32, 32)
) -> Path:
    """root/<split>/<class>/NN.png, solid colour 10*(class index+1) per class (sorted)."""
    for split, n in zip(splits, per_class):
        for cls in classes:
            shade = 10 * (sorted(classes).index(cls) + 1)
            for i in range(n):
                write_image(root / split / cls / f"{i:02d}.png", (shade, shade + 1, shade + 2), size)
    return root


def tar_dir(src: Path, dest: Path, arcname: str = "") -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        for p in sorted(src.rglob("*")):
            tar.add(
                p,
                arcname=str(Path(arcname) / p.relative_to(src)) if arcname else str(p.relative_to(src)),
                recursive=False,
            )
    return dest


WNIDS = ("n01440764", "n01443537", "n01484850")


def imagenet_folder(
    root: Path, classes=WNIDS, train: int = 5, val: int = 2, corrupt: bool = True, seed: int = 0
) -> Path:
    """A tiny ImageNet-layout folder: root/{train,val}/<wnid>/*.JPEG of varied sizes
    (40-80 px, not square), a learnable colour per class plus noise; one grayscale JPEG
    and one RGBA PNG (mode conversions); with ``corrupt``, one garbage file named
    ``.JPEG`` in the first training class (so train/ holds len(classes) * train + 1 files)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        for c, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = (int(v) for v in rng.integers(40, 81, 2))
                colour = np.array([60 + 70 * c, 200 - 60 * c, 40 + 90 * (c % 2)])
                arr = np.clip(colour + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
                img = Image.fromarray(arr)
                if split == "train" and c == 1 and i == 0:
                    img.convert("L").save(folder / f"{cls}_{i}.JPEG", quality=90)
                elif split == "train" and c == 2 and i == 0:
                    img.convert("RGBA").save(folder / f"{cls}_{i}.png")
                else:
                    img.save(folder / f"{cls}_{i}.JPEG", quality=90)
    if corrupt:
        (root / "train" / classes[0] / "corrupt.JPEG").write_bytes(b"\xff\xd8 not really a jpeg " * 8)
    return root


CIFAR_JPEG = Path("/work/shared/datasets/cifar10-jpeg.tar.gz")


def cifar_jpeg_subset(root: Path, train: int = 8, val: int = 2, archive: Path = CIFAR_JPEG) -> Path:
    """The first ``train`` / ``val`` images per class of the CIFAR-10 JPEG copy as an
    ImageNet-layout folder (its test/ becomes val/): a real-image check of the streamed path."""
    import tarfile

    want = {"train": train, "test": val}
    counts = {}
    with tarfile.open(archive) as tar:
        for m in tar:
            parts = m.name.split("/")
            if not m.isfile() or len(parts) < 3 or parts[-3] not in want:
                continue
            key = (parts[-3], parts[-2])
            if counts.get(key, 0) < want[parts[-3]]:
                counts[key] = counts.get(key, 0) + 1
                dest = root / ("val" if parts[-3] == "test" else "train") / parts[-2] / parts[-1]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(m).read())
            if len(counts) == 20 and all(v == want[k[0]] for k, v in counts.items()):
                break
    return root
