"""Reading and extracting tar archives without trusting them.

Members with absolute paths, ``..`` components, links, devices or fifos are refused
(a hostile tarball could otherwise write outside the target folder). Extraction goes
to a temporary folder that is renamed into place only when complete (and the rename
made durable, :func:`idresnet.files.fsync_folder`), so an interrupted or refused
extraction leaves nothing behind; its files are not fsynced one by one (an image
folder's thousands), which is why it does not go through :mod:`idresnet.files`.

Damage is never silent: every read, of a header or of a member's bytes, turns a
decompression or tar error into a one-line DatasetError naming the archive, and a
complete pass also checks the end: the archive must close with its zero end-of-archive
blocks (tarfile alone stops without a word at a truncated or garbled header) and a
compressed stream must pass its own check (gzip's CRC and length, bz2's and xz's).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from idresnet.errors import DatasetError, one_line
from idresnet.files import fsync_folder

TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
_DAMAGE = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError)
# compressed streams by their magic bytes; each reader verifies its checksums at the end
_COMPRESSED = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))
_TAIL = 1 << 16  # bytes kept of the decompressed stream: more than tarfile buffers


def is_tar(path: Path) -> bool:
    """Whether ``path`` is a file that looks like a tar archive (by name or content)."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.name.lower().endswith(TAR_SUFFIXES):
        return True
    try:
        return tarfile.is_tarfile(path)
    except _DAMAGE:
        return False


def check_member(archive: Path, member: tarfile.TarInfo) -> PurePosixPath:
    """The member's safe relative path, or DatasetError naming it and the reason."""
    name = member.name
    rel = PurePosixPath(name)
    drive = bool(rel.parts) and rel.parts[0].endswith(":")
    if rel.is_absolute() or name.startswith(("/", "\\")) or drive:
        raise DatasetError(f"{archive}: member {name!r} refused (absolute path)")
    if ".." in rel.parts or "\\" in name:
        raise DatasetError(f"{archive}: member {name!r} refused (path escapes the archive root)")
    if member.issym() or member.islnk():
        raise DatasetError(f"{archive}: member {name!r} refused (link)")
    if not (member.isfile() or member.isdir()):
        raise DatasetError(f"{archive}: member {name!r} refused (device, fifo or special file)")
    return PurePosixPath(*[p for p in rel.parts if p not in ("", ".")])


def damaged(archive: Path, exc: BaseException | str, where: str = "") -> DatasetError:
    """The one-line error for a truncated or damaged ``archive``."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {one_line(exc)}"
    return DatasetError(f"{archive}: truncated or damaged archive ({where}{reason})")


class _Reader:
    """The decompressed bytes of an archive for tarfile, keeping the last ones read."""

    def __init__(self, raw):
        magic = raw.read(6)
        raw.seek(0)
        opener = next((o for m, o in _COMPRESSED if magic.startswith(m)), None)
        self.stream = opener(raw, "rb") if opener else raw
        self.pos, self.tail = 0, bytearray()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.pos += len(data)
        self.tail += data
        if len(self.tail) > 2 * _TAIL:
            del self.tail[:-_TAIL]
        return data

    def check_end(self, archive: Path, offset: int) -> None:
        """From ``offset``, the block where tarfile stopped, to the end of the stream:
        one zero block or more and nothing else (reading on checks a compressed stream)."""
        kept_from = self.pos - len(self.tail)  # tarfile buffers less than _TAIL bytes
        size, block = 0, bytes(self.tail[max(offset - kept_from, 0) :])
        while block:
            if block.strip(b"\0"):
                raise damaged(
                    archive,
                    f"unreadable member header at byte {offset} of the tar stream, before its end-of-archive marker",
                )
            size += len(block)
            block = self.stream.read(1 << 20)
        if size < tarfile.BLOCKSIZE:
            raise damaged(
                archive,
                f"the tar stream ends at byte {offset + size}, inside a member "
                "header or before its end-of-archive marker",
            )


class _MemberFile:
    """A member's file object whose read errors are DatasetErrors naming the archive."""

    def __init__(self, archive: Path, rel: PurePosixPath, fileobj):
        self.archive, self.rel, self.fileobj = archive, rel, fileobj

    def read(self, size: int = -1) -> bytes:
        try:
            return self.fileobj.read(size)
        except _DAMAGE as exc:
            raise damaged(self.archive, exc, f"member {self.rel}: ") from None


def iter_members(archive: Path):
    """Yield ``(safe_relpath, TarInfo, fileobj-or-None)`` in one streaming pass.

    Every member is checked; a damaged or truncated archive raises DatasetError, also
    from ``fileobj.read()``, which is only valid until the next member is requested.
    """
    archive = Path(archive)
    try:
        with open(archive, "rb") as raw:
            reader = _Reader(raw)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    rel = check_member(archive, member)
                    fileobj = tar.extractfile(member) if member.isfile() else None
                    yield rel, member, None if fileobj is None else _MemberFile(archive, rel, fileobj)
                reader.check_end(archive, tar.offset)
    except DatasetError:
        raise
    except _DAMAGE as exc:
        raise damaged(archive, exc) from None


def peek_names(archive: Path, limit: int = 64) -> list[str]:
    """The first ``limit`` member paths (checked), for telling archive layouts apart."""
    names = []
    for rel, _member, _f in iter_members(archive):
        if str(rel) not in ("", "."):
            names.append(str(rel))
        if len(names) >= limit:
            break
    return names


def _second_opinion(archive: Path, member: tarfile.TarInfo, root: Path) -> None:
    """Python's own ``data`` extraction filter (3.11.4+, PEP 706) must agree that the
    member is safe, on top of :func:`check_member`'s stricter rules."""
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:
        return
    try:
        data_filter(member, str(root))
    except tarfile.FilterError as exc:
        raise DatasetError(f"{archive}: member {member.name!r} refused ({type(exc).__name__})") from None


def safe_extract(archive: Path, dest: Path, progress=None) -> Path:
    """Extract ``archive`` into ``dest`` (which must not exist yet) and return ``dest``.

    Only regular files and directories are written, with default permissions.
    """
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".extract-"))
    try:
        root = tmp.resolve()
        for rel, member, fileobj in iter_members(archive):
            target = (root / rel).resolve() if rel.parts else root
            if target != root and root not in target.parents:
                raise DatasetError(f"{archive}: member {member.name!r} refused (outside the target)")
            _second_opinion(archive, member, root)
            if fileobj is None:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as out:
                shutil.copyfileobj(fileobj, out, 1 << 20)
            if progress is not None:
                progress.update(1)
        if dest.exists():  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, dest)
            fsync_folder(dest.parent)
        return dest
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, FileExistsError):
            raise DatasetError(f"{archive}: duplicate member {exc.filename!r}") from None
        raise
