"""Atomic writes and validating reads, the one implementation for the whole package.

A killed process leaves either the complete file (or folder) or none, never half of one: everything is
written under a temporary name in the destination's folder, flushed, then renamed into place. The
temporary name carries the writer's host and process id, so a cleanup removes only temporaries whose
owner is gone, never those of another live process working on the same run.
A file that exists but cannot be read (truncated, empty, foreign) raises `DamagedFile`, naming it.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import zipfile
from contextlib import contextmanager
from typing import Any

import numpy as np

from lth_tf.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)
HOST = socket.gethostname().replace("-", "_")
TMP_PREFIX = ".tmp-"
FOREIGN_TMP_MAX_AGE_S = 24 * 3600  # another host's temporary is removed only after a day


class DamagedFile(UserError):
    """A file that should hold a result exists but cannot be read."""

    def __init__(self, path: str, why: str):
        super().__init__(f"{path}: damaged ({why})")
        self.path = path


def _tmp_prefix() -> str:
    return f"{TMP_PREFIX}{HOST}-{os.getpid()}-"


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str):
    """Yields a temporary path beside `path`; renames it to `path` only if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_tmp_prefix(), suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
        _fsync_dir(directory)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def atomic_dir(path: str):
    """Yields a temporary folder beside `path`; when the block succeeds it replaces `path` (a previous
    folder of that name is moved aside first and removed after), so readers see the old or the new one."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=_tmp_prefix())
    try:
        yield tmp
        for folder, dirs, files in os.walk(tmp):
            os.chmod(folder, 0o777 & ~_UMASK)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o666 & ~_UMASK)
        old = _move_aside(path)
        os.replace(tmp, path)
        _fsync_dir(parent)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _move_aside(path: str) -> str | None:
    """Rename `path` (if it exists) to a temporary of this process beside it; returns the new name."""
    if not os.path.lexists(path):
        return None
    aside = os.path.join(os.path.dirname(os.path.abspath(path)), f"{_tmp_prefix()}{os.urandom(4).hex()}")
    os.replace(path, aside)
    return aside


def remove_dir(path: str) -> None:
    """Remove a folder so that no reader ever sees it half-deleted (it is renamed away first)."""
    aside = _move_aside(path)
    if aside:
        shutil.rmtree(aside, ignore_errors=True)


def _owner_alive(name: str) -> bool:
    """Whether the process that made temporary `name` may still be running."""
    parts = name[len(TMP_PREFIX):].split("-")
    if len(parts) < 3 or not parts[1].isdigit():
        return False  # written before temporaries carried their owner
    host, pid = parts[0], int(parts[1])
    if host != HOST:
        return True  # cannot see another machine's processes; age decides (remove_stale_temporaries)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(root: str, recursive: bool = True) -> int:
    """Remove the temporaries in `root` (and below it, if recursive) whose owner is gone (or, from another
    host, that are older than a day)."""
    removed, now = 0, time.time()
    for folder, dirs, files in os.walk(root):
        if not recursive and folder != root:
            break
        for name in list(dirs) + files:
            if not name.startswith(TMP_PREFIX):
                continue
            path = os.path.join(folder, name)
            foreign = not name[len(TMP_PREFIX):].startswith(HOST + "-")
            try:
                stale = not _owner_alive(name) or (foreign and now - os.path.getmtime(path) > FOREIGN_TMP_MAX_AGE_S)
                if not stale:
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                    dirs.remove(name)
                else:
                    os.remove(path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def write_text(path: str, text: str, errors: str = "strict") -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", errors=errors) as f:
            f.write(text)


def write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_json(path: str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def read_json(path: str) -> Any:
    """The JSON value in `path`; FileNotFoundError if absent, DamagedFile if unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise DamagedFile(path, f"not valid JSON: {e}") from None


def write_npz(path: str, arrays: dict[str, np.ndarray], compressed: bool = True) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, **arrays)


def read_npz(path: str) -> dict[str, np.ndarray]:
    """{name: array} from an .npz; FileNotFoundError if absent, DamagedFile if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DamagedFile(path, f"not a readable .npz: {e}") from None


def json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
