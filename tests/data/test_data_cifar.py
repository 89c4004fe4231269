"""CIFAR archives: reading, checking, refusing hostile pickles, caching."""

import os
import pickle
import re

import numpy as np
import pytest
from databuild import cifar_batches, expected_images, py2_pickle, write_cifar_archive, write_cifar_folder

from idresnet.data import cifar, load_dataset
from idresnet.data.safepickle import safe_loads
from idresnet.errors import DatasetError

TRAIN10 = [f"data_batch_{i}" for i in range(1, 6)]


def one_line_naming(exc, path):
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def test_archive_folder_and_parent(tmp_path):
    b = cifar_batches()
    archive = write_cifar_archive(tmp_path / "a" / "cifar-10-python.tar.gz", b)
    ds = load_dataset("cifar10", archive)
    assert ds.classes == list(cifar.CIFAR10_CLASSES) and ds.num_classes == 10
    assert ds.train_images.shape == (40, 32, 32, 3) and ds.train_images.dtype == np.uint8
    assert np.array_equal(ds.train_images, expected_images(b, TRAIN10))
    assert np.array_equal(ds.test_labels, b["test_batch"][b"labels"])
    assert ds.train_labels.dtype == np.int64
    assert "official python archive" in ds.description
    parent = load_dataset("cifar10", archive.parent)  # a folder holding the archive
    assert np.array_equal(parent.train_images, ds.train_images)
    extracted = write_cifar_folder(tmp_path / "x" / "cifar-10-batches-py", b)
    for source in (extracted, extracted.parent):
        other = load_dataset("cifar10", source)
        assert np.array_equal(other.train_images, ds.train_images)
        assert np.array_equal(other.test_labels, ds.test_labels)


def test_cifar100_fine_by_default_and_coarse(tmp_path):
    b = cifar_batches("cifar100")
    archive = write_cifar_archive(tmp_path / "cifar-100-python.tar.gz", b, "cifar100")
    fine = load_dataset("cifar100", archive)
    assert fine.num_classes == 100 and fine.classes[3] == "fine03"
    assert np.array_equal(fine.train_labels, b["train"][b"fine_labels"])
    coarse = load_dataset("cifar100", archive, label_set="coarse")
    assert coarse.num_classes == 20 and "coarse" in coarse.description
    assert np.array_equal(coarse.test_labels, b["test"][b"coarse_labels"])


def test_python2_pickles(tmp_path):
    b = cifar_batches()
    raw = {}
    for member, d in b.items():
        raw[member] = py2_pickle({k: v for k, v in d.items() if k != b"filenames"})
    archive = write_cifar_archive(tmp_path / "c.tar.gz", {}, raw=raw)
    ds = load_dataset("cifar10", archive)
    assert np.array_equal(ds.train_images, expected_images(b, TRAIN10))
    assert ds.classes[0] == "airplane"


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "PWNED"
    b = cifar_batches()
    b["data_batch_2"] = {b"data": _Evil(marker), b"labels": [0]}
    archive = write_cifar_archive(tmp_path / "evil.tar.gz", b)
    with pytest.raises(DatasetError, match="refused") as exc:
        load_dataset("cifar10", archive)
    assert "data_batch_2" in one_line_naming(exc, archive)
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Evil(marker)))  # the same payload does run when unrestricted
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(np.array([1, "x"], dtype=object)),
        pickle.dumps(eval, protocol=2),
        b"cbuiltins\nexec\n(Vprint(1)\ntR.",
        pickle.dumps(np.ma.masked_array([1, 2])),
    ],
)
def test_restricted_unpickler_refuses(payload):
    with pytest.raises(DatasetError, match="f.bin"):
        safe_loads(payload, "f.bin")


def test_safe_loads_admits_plain_arrays():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for proto in (2, 4, 5):
        out = safe_loads(pickle.dumps({b"data": a, "l": [1, 2]}, protocol=proto), "f")
        assert np.array_equal(out[b"data"], a) and out["l"] == [1, 2]


def _damaged(tmp_path, kind):
    b = cifar_batches()
    if kind == "missing member":
        del b["data_batch_3"]
    elif kind == "wrong shape":
        b["data_batch_4"][b"data"] = np.zeros((8, 3000), np.uint8)
    elif kind == "label out of range":
        b["test_batch"][b"labels"][2] = 10
    elif kind == "labels count":
        b["test_batch"][b"labels"] = [1, 2]
    elif kind == "not a dict":
        b["batches.meta"] = [1, 2, 3]
    archive = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", b)
    if kind == "truncated":
        data = archive.read_bytes()
        archive.write_bytes(data[: len(data) // 2])
    if kind == "garbage":
        archive.write_bytes(b"\x1f\x8b" + os.urandom(200))
    return archive


@pytest.mark.parametrize(
    "kind,pattern",
    [
        ("missing member", "missing member cifar-10-batches-py/data_batch_3"),
        ("wrong shape", r"data_batch_4: 'data' has shape \(8, 3000\)"),
        ("label out of range", r"test_batch: label 10 out of range \[0, 10\)"),
        ("labels count", "test_batch: 'labels' must be 8 integers"),
        ("not a dict", "batches.meta: expected a pickled dict"),
        ("truncated", "truncated or damaged archive"),
        ("garbage", "truncated or damaged archive"),
    ],
)
def test_damaged_archives(tmp_path, kind, pattern):
    archive = _damaged(tmp_path, kind)
    with pytest.raises(DatasetError, match=pattern) as exc:
        load_dataset("cifar10", archive)
    one_line_naming(exc, archive)


def test_missing_file_in_extracted_folder(tmp_path):
    b = cifar_batches()
    del b["test_batch"]
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", b)
    with pytest.raises(DatasetError, match="missing member test_batch") as exc:
        load_dataset("cifar10", folder)
    one_line_naming(exc, folder)


def test_unrecognised_sources(tmp_path):
    with pytest.raises(DatasetError, match="no such file") as exc:
        load_dataset("cifar10", tmp_path / "nope")
    one_line_naming(exc, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", tmp_path / "empty")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="not a tar archive"):
        load_dataset("cifar10", text)


def test_cache_hit_and_invalidation(tmp_path, monkeypatch, cache):
    archive = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", cifar_batches(seed=1))
    first = load_dataset("cifar10", archive)
    assert len(list((cache / "arrays").glob("*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("decoded again although the cache is warm")

    real = cifar.read_cifar
    monkeypatch.setattr(cifar, "read_cifar", boom)
    again = load_dataset("cifar10", archive)
    assert np.array_equal(again.train_images, first.train_images)
    assert again.description == first.description

    write_cifar_archive(archive, cifar_batches(seed=2))  # the source changes
    st = archive.stat()
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("cifar10", archive)
    monkeypatch.setattr(cifar, "read_cifar", real)
    changed = load_dataset("cifar10", archive)
    assert not np.array_equal(changed.train_images, first.train_images)
    assert len(list((cache / "arrays").glob("*.npz"))) == 1  # the stale entry is pruned


def test_damaged_cache_entry_is_rebuilt(tmp_path, cache):
    archive = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", cifar_batches())
    first = load_dataset("cifar10", archive)
    (entry,) = (cache / "arrays").glob("*.npz")
    entry.write_bytes(b"garbage")
    assert np.array_equal(load_dataset("cifar10", archive).train_images, first.train_images)


def test_cache_dir_argument_and_env(tmp_path, monkeypatch):
    from idresnet.data import default_cache_dir

    archive = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", cifar_batches())
    load_dataset("cifar10", archive, cache_dir=tmp_path / "mine")
    assert list((tmp_path / "mine" / "arrays").glob("*.npz"))
    monkeypatch.delenv("IDRESNET_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "idresnet"
    monkeypatch.setenv("IDRESNET_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"


def test_error_messages_are_one_line(tmp_path):
    archive = _damaged(tmp_path, "truncated")
    with pytest.raises(DatasetError) as exc:
        load_dataset("cifar10", archive)
    assert re.fullmatch(r"[^\n]+", str(exc.value))
