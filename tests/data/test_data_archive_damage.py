"""Truncated and damaged tarballs, for every reader of members (image-folder tarballs,
CIFAR archives, extraction): always one DatasetError line naming the archive, never a
tarfile traceback and never a silently shorter dataset."""

import gzip
import io
import re
import tarfile

import numpy as np
import pytest
from databuild import cifar_batches, image_folder, write_cifar_archive

from idresnet.data import load_dataset
from idresnet.data.safetar import iter_members, safe_extract
from idresnet.errors import DatasetError


def _tar_bytes(src_archive):
    """The uncompressed tar stream of a .tar.gz."""
    return gzip.decompress(src_archive.read_bytes())


def _middle_member(data: bytes) -> tarfile.TarInfo:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        files = [m for m in tar.getmembers() if m.isfile()]
    return files[len(files) // 2]


def _garble(data: bytes, start: int, size: int = 100) -> bytes:
    return data[:start] + bytes(b ^ 0xA5 for b in data[start : start + size]) + data[start + size :]


# damage to the tar stream (then written plain or gzipped), and to the gzip stream itself
TAR_DAMAGE = {
    "cut in a member's data": lambda d, m: d[: m.offset_data + m.size // 2],
    "cut at a member header": lambda d, m: d[: m.offset],
    "cut inside a member header": lambda d, m: d[: m.offset + 200],
    "garbled member header": lambda d, m: _garble(d, m.offset),
    "zeroed member header": lambda d, m: d[: m.offset] + bytes(512) + d[m.offset + 512 :],
}
GZIP_DAMAGE = {
    "gzip cut in half": lambda z: z[: len(z) // 2],
    "gzip cut before its trailer": lambda z: z[:-4],
    "gzip bytes garbled in the middle": lambda z: _garble(z, len(z) // 2, 16),
}
CASES = [(k, "tar") for k in TAR_DAMAGE] + [(k, "tar.gz") for k in TAR_DAMAGE] + [(k, "tar.gz") for k in GZIP_DAMAGE]


def damage(good, kind: str, fmt: str, dest):
    """``good`` (a .tar.gz) with damage ``kind``, written to ``dest``.``fmt``."""
    if kind in GZIP_DAMAGE:
        data = GZIP_DAMAGE[kind](good.read_bytes())
    else:
        plain = _tar_bytes(good)
        data = TAR_DAMAGE[kind](plain, _middle_member(plain))
        data = gzip.compress(data) if fmt == "tar.gz" else data
    path = dest.with_name(f"{dest.name}.{fmt}")
    path.write_bytes(data)
    return path


def one_line_naming(exc, archive):
    msg = str(exc.value)
    assert re.fullmatch(r"[^\n]+", msg) and str(archive) in msg, msg
    return msg


@pytest.fixture
def folder_tgz(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=(4, 2))
    path = tmp_path / "imgs.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root, arcname="imgs")
    return path


@pytest.fixture
def cifar_tgz(tmp_path):
    return write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", cifar_batches())


@pytest.mark.parametrize("kind,fmt", CASES)
@pytest.mark.parametrize("dataset", ["folder", "cifar10"])
def test_loading(tmp_path, request, dataset, kind, fmt):
    good = request.getfixturevalue("folder_tgz" if dataset == "folder" else "cifar_tgz")
    bad = damage(good, kind, fmt, tmp_path / "bad")
    with pytest.raises(DatasetError, match="truncated or damaged archive") as exc:
        load_dataset(dataset, bad)
    one_line_naming(exc, bad)


@pytest.mark.parametrize("kind,fmt", CASES)
def test_extraction_leaves_nothing(tmp_path, folder_tgz, kind, fmt):
    bad = damage(folder_tgz, kind, fmt, tmp_path / "bad")
    with pytest.raises(DatasetError, match="truncated or damaged archive") as exc:
        safe_extract(bad, tmp_path / "out")
    one_line_naming(exc, bad)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".extract-*"))


def test_member_read_errors_name_the_member(tmp_path, folder_tgz):
    plain = _tar_bytes(folder_tgz)
    member = _middle_member(plain)
    bad = tmp_path / "cut.tar"
    bad.write_bytes(TAR_DAMAGE["cut in a member's data"](plain, member))
    with pytest.raises(DatasetError, match=f"member {re.escape(member.name)}: ReadError") as exc:
        for _rel, _m, f in iter_members(bad):
            if f is not None:
                f.read()
    one_line_naming(exc, bad)


def test_intact_archives_of_every_compression(tmp_path, folder_tgz):
    """The end check accepts what tarfile writes, compressed or not, and the padding
    after the end-of-archive blocks; every member is read."""
    want = load_dataset("folder", folder_tgz)
    assert want.train_images.shape == (12, 32, 32, 3)
    plain = _tar_bytes(folder_tgz)
    for mode in ("w", "w:gz", "w:bz2", "w:xz"):
        path = tmp_path / f"imgs-{mode[2:] or 'plain'}.tar"
        with tarfile.open(path, mode) as tar, tarfile.open(fileobj=io.BytesIO(plain)) as src:
            for m in src:
                tar.addfile(m, src.extractfile(m) if m.isfile() else None)
        ds = load_dataset("folder", path)
        assert np.array_equal(ds.train_images, want.train_images)
    one_block_end = tmp_path / "short-end.tar"  # one zero block, as some writers leave it
    end = plain.rstrip(b"\0")
    one_block_end.write_bytes(end + bytes(-len(end) % 512 + 512))
    assert np.array_equal(load_dataset("folder", one_block_end).test_labels, want.test_labels)
