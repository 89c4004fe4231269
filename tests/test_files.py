"""idresnet.files: the checksums of downloads, converted sources and exports; and the
promise of its docstring, that every whole file idresnet writes goes through it."""

import ast
import hashlib
from pathlib import Path

import pytest

from idresnet.files import file_digest


@pytest.mark.parametrize("size", [0, 5, (1 << 20) + 3])  # empty, one short chunk, across a chunk boundary
@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_file_digest_equals_hashlib_over_the_whole_file(tmp_path, size, algorithm):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_digest(path, algorithm) == hashlib.new(algorithm, data).hexdigest()
    assert file_digest(path, algorithm, chunk=7) == hashlib.new(algorithm, data).hexdigest()


def test_known_value(tmp_path):
    # sha256("abc") from FIPS 180-2, appendix B.1
    (tmp_path / "abc").write_bytes(b"abc")
    assert file_digest(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


SRC = Path(__file__).resolve().parents[1] / "src" / "idresnet"
# (module, call): why it may write without idresnet.files; the exceptions files.py names
BARE_WRITES = {
    ("training/metrics.py", "open"): "metrics.csv rows are appended (a torn last row is skipped when read)",
    ("data/safetar.py", "open"): "an extracted tarball's files, in a temporary folder renamed when complete",
    ("data/safetar.py", "os.replace"): "that rename",
    ("analysis/figures.py", "savefig"): "into memory, then atomic_write_bytes",
}


def bare_writes(path: Path) -> set[tuple[str, str]]:
    """``(module, call)`` of the calls in ``path`` that write a file without idresnet.files."""
    found = set()
    module = path.relative_to(SRC).as_posix()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "os":
            name = f"os.{f.attr}"
        if name == "open":
            mode = (
                node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            )
            if not (isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wxa")):
                continue
        elif name not in ("write_text", "write_bytes", "savefig", "os.replace", "os.rename", "shutil.copyfile"):
            continue
        found.add((module, name))
    return found


def test_every_whole_file_is_written_through_files_py():
    """Issue #24: six writers wrote bare (reports, figures, the download with its own rename)."""
    found = set().union(*(bare_writes(p) for p in SRC.rglob("*.py") if p.name != "files.py"))
    assert found - set(BARE_WRITES) == set(), "write it with idresnet.files (or name the exception in files.py)"
    assert set(BARE_WRITES) - found == set(), "an exception is gone: remove it from BARE_WRITES"
