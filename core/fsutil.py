"""Files and folders a run writes: atomic writes with the user's umask, strict JSON,
output folders that vanish again if the run fails before writing anything, a lock
so two runs never share one folder, and the leftovers of killed writes removed.

A crash mid-write never leaves a half-written file behind: writers get a
temporary path beside the target (``.<name>.<random><ext>``) that replaces it
atomically on success. Locks use ``fcntl.flock`` (POSIX), which the kernel
releases when the holder dies, even by ``kill -9``.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import socket
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from genrecnn.errors import GenrecnnError, OutputError

LOCK_NAME = ".genrecnn.lock"


def _temp_prefix(name: str) -> str:
    return f".{name}."


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _cannot_write(path, exc: OSError, what: str = "output path") -> OutputError:
    return OutputError(f"cannot write {path}: {exc.strerror or exc}; choose another {what}")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    ``suffix`` keeps the extension for writers that insist on one (matplotlib, NumPy).
    The file gets the mode a plain ``open()`` would give it (0666 less the umask).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=suffix or path.suffix,
                                   dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, GenrecnnError):
            raise _cannot_write(path, exc) from None    # a folder in the way, a full disk
        raise


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def _finite(obj):
    """``obj`` with NaN and infinities as None, and NumPy scalars as Python numbers."""
    if isinstance(obj, numbers.Integral) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, numbers.Real) and not isinstance(obj, bool):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_text(obj, indent: int | None = 2) -> str:
    """Strict JSON that any reader accepts: NaN and infinities become null."""
    return json.dumps(_finite(obj), indent=indent, allow_nan=False)


def remove_stale_temps(folder, names) -> list[Path]:
    """Delete the temporary files that killed writes of ``names`` left in ``folder``.

    Only safe while no other process writes there (hold :func:`folder_lock`).
    """
    removed = []
    for name in names:
        for tmp in Path(folder).glob(_temp_prefix(name) + "*"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def writable_folder(path, what: str, advice: str) -> Path:
    """Create ``path`` if needed and prove a file can be written there, or GenrecnnError
    "cannot write to <what> <path>: <why>; <advice>"."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GenrecnnError(f"cannot write to {what} {path}: {exc.strerror or exc}; "
                            f"{advice}") from None
    return path


@contextmanager
def output_folder(path, option: str = "--out"):
    """Create ``path`` (with missing parents) and prove a file can be written there.

    If the body raises, the folders this call created are removed again when
    they are still empty, so a failed run leaves nothing behind.
    """
    path = Path(path)
    created = []
    probe_dir = path
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        created.append(probe_dir)
        probe_dir = probe_dir.parent
    try:
        writable_folder(path, "output folder", f"choose another {option}")
    except GenrecnnError:
        _remove_empty(created)
        raise
    try:
        yield path
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(folders) -> None:
    for folder in folders:              # deepest first
        try:
            folder.rmdir()
        except OSError:                 # not empty (or gone): keep it
            return


@contextmanager
def folder_lock(folder, option: str = "--out"):
    """Hold ``folder``'s lock for the body; if another run holds it, say who and stop.

    The lock file records pid, host and start time for the error message; it
    is removed on exit.
    """
    import fcntl

    path = Path(folder) / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _cannot_write(path, exc, option) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 1000).decode(errors="replace").strip() or "details unknown"
            os.close(fd)
            raise GenrecnnError(f"{folder} is in use by another genrecnn run ({holder}); wait "
                                f"for it to finish or choose another {option}") from None
        try:   # the previous holder may have removed the file between our open and flock
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}, started {started}".encode())
    try:
        yield
    finally:
        try:
            os.unlink(path)             # while still locked: no one can have it open and locked
        except OSError:
            pass
        os.close(fd)


def regular_file_problem(path) -> str | None:
    """Why ``path`` cannot be read as a plain file (missing, a folder, a FIFO, a device), or None.

    Opening a FIFO or a device could block or never end, so such paths are
    refused before anything opens them.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist (or is a broken link)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device or socket"
        return f"is {kind}, not a regular file"
    return None
