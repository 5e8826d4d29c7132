"""Small file utilities shared by every writer and reader: nothing is ever left half-written under its final name,
and a file that is not text says where.

Temporary files and folders of :func:`atomic_write` / :func:`atomic_dir` are hidden siblings of their target named
``.<target name>.<host>.<pid>.<random>.tmp``. A writer killed before its rename (``kill -9``, a power cut) leaves one
behind; the next write to the same target removes such orphans (:func:`remove_orphans`), by this rule:

- only names of exactly that pattern, for that target, are considered (never another program's files);
- one written by a process of *this* host is removed when that process no longer exists (a live writer, or a
  reused pid, keeps it);
- one of another host (a file system shared by a cluster) is removed when it has not been modified for
  :data:`ORPHAN_AGE_S` seconds: a live writer keeps touching its file, and none writes for that long without a
  byte.

Written files and folders get the ordinary permissions of the process's umask (``0o666 & ~umask`` for a file,
``0o777 & ~umask`` for a folder), as :func:`open` would give them; :func:`tempfile.mkstemp` alone gives ``0o600``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_dir", "remove_orphans", "read_text", "decode_text", "load_json", "ORPHAN_AGE_S"]

ORPHAN_AGE_S = 3600.0
"""Seconds without modification after which another host's temporary file counts as orphaned."""


def _host() -> str:
    # the host name goes into file names: letters, digits and '-' only, so the pattern stays unambiguous
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (``/proc/self/status``)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status", encoding="ascii") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)  # no /proc: the classic set-and-restore
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{_host()}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphans(path: str | os.PathLike, *, max_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Remove the temporary files and folders that interrupted writes of ``path`` left beside it.

    See the module docstring for the rule; returns what was removed. Called by :func:`atomic_write` and
    :func:`atomic_dir` before each write.
    """
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[a-z0-9_]+\.tmp$")
    removed = []
    try:
        siblings = list(os.scandir(path.parent))
    except OSError:
        return removed
    host, now = _host(), time.time()
    for entry in siblings:
        m = pattern.match(entry.name)
        if m is None:
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:  # removed meanwhile
            continue
        orphan = not _pid_alive(int(m["pid"])) if m["host"] == host else age > max_age_s
        if not orphan:
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator:
    """Open a temporary file beside ``path``; on success rename it over ``path``, on error delete it.

    ``mode`` is ``"w"``, ``"wb"`` or ``"w+b"`` (the writer may read back what it wrote, as :mod:`zipfile`'s append
    mode does); ``kwargs`` go to :func:`open` (``encoding``, ``newline``). The file gets the
    umask's permissions; orphans of earlier interrupted writes of ``path`` are removed first (module docstring).
    """
    if mode not in ("w", "wb", "w+b"):
        raise ValueError(f"mode must be 'w', 'wb' or 'w+b', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path``, on error it is removed.

    An existing ``path`` is replaced only once the new directory is complete. The folder gets the umask's
    permissions; orphans of earlier interrupted writes are removed first (module docstring). A replacement killed
    between its two renames leaves ``path`` missing and its last complete version in ``.<name>.old``: that version
    is put back first, and a ``.old`` beside a complete ``path`` is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    old = path.with_name(f".{path.name}.old")
    if old.is_dir() and not path.exists():
        os.replace(old, path)
    shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        tmp.chmod(0o777 & ~_umask())
        yield tmp
        if path.exists():
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_text(path: str | os.PathLike, *, encoding: str = "utf-8", name: str | None = None) -> str:
    """The text of ``path``; bytes that are not ``encoding`` raise a ValueError naming the file, the byte offset
    and the line (Python's own error names neither the file nor the line).

    ``name`` is how messages call the file (default: the path as given). ``"utf-8-sig"`` skips a byte-order mark.
    """
    path = Path(path)
    return decode_text(path.read_bytes(), name or str(path), encoding=encoding)


def decode_text(data: bytes, name: str, *, encoding: str = "utf-8") -> str:
    """``data.decode(encoding)``; an undecodable byte raises a ValueError naming ``name``, the byte offset (from 0)
    and the line (see :func:`read_text`)."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        bad = data[err.start:err.end].hex(" ")
        raise ValueError(f"{name}: byte {err.start} (line {line}): {bad} is not valid "
                         f"{encoding.removesuffix('-sig').upper()} ({err.reason}); save the file as UTF-8"
                         ) from None


def load_json(path: str | os.PathLike, **kwargs) -> Any:
    """The content of a UTF-8 JSON file; ``ValueError`` naming the file and the line or byte where it is not.

    ``kwargs`` go to :func:`json.load` (``object_hook``, ...)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, **kwargs)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError:
        read_text(path)  # raises the ValueError that names the byte and its line
        raise
