"""Reading and extracting tar archives without trusting them.

Members with absolute paths, ``..`` components, links, devices or fifos are refused
(a hostile tarball could otherwise write outside the target folder). Extraction goes
to a temporary folder that is renamed into place only when complete, so an
interrupted or refused extraction leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from idresnet.data.cache import one_line
from idresnet.errors import DatasetError

TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
_DAMAGE = (tarfile.TarError, EOFError, zlib.error, OSError, ValueError)


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


def iter_members(archive: Path):
    """Yield ``(safe_relpath, TarInfo, fileobj-or-None)`` in one streaming pass.

    Every member is checked; a damaged or truncated archive raises DatasetError.
    The file object is only valid until the next member is requested.
    """
    archive = Path(archive)
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                rel = check_member(archive, member)
                yield rel, member, (tar.extractfile(member) if member.isfile() else None)
    except DatasetError:
        raise
    except _DAMAGE as exc:
        raise DatasetError(
            f"{archive}: truncated or damaged archive ({type(exc).__name__}: {one_line(exc)})"
        ) from None


def peek_names(archive: Path, limit: int = 64) -> list[str]:
    """The first ``limit`` member paths (checked), for telling archive layouts apart."""
    names = []
    for rel, _member, _f in iter_members(archive):
        if str(rel) not in ("", "."):
            names.append(str(rel))
        if len(names) >= limit:
            break
    return names


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
                raise DatasetError(
                    f"{archive}: member {member.name!r} refused (outside the target)")
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
        return dest
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, FileExistsError):
            raise DatasetError(f"{archive}: duplicate member {exc.filename!r}") from None
        raise
