"""Where the web framework may put uploads: a private (0700) folder, in RAM when /dev/shm exists,
emptied after every request and removed at shutdown."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def private_temp_dir(prefix: str = "facegan-serve-") -> Path:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))  # mkdtemp makes it 0700
    return path


def remove_upload(path: str | os.PathLike | None, root: str | os.PathLike) -> None:
    """Delete an uploaded file and the per-upload folders above it, up to (not including) ``root``."""
    if not path:
        return
    root = Path(root).resolve()
    p = Path(path).resolve()
    if root not in p.parents:
        return
    try:
        p.unlink(missing_ok=True)
    except IsADirectoryError:
        shutil.rmtree(p, ignore_errors=True)
    parent = p.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def empty_dir(root: str | os.PathLike) -> None:
    """Remove everything inside ``root`` (the folder itself stays)."""
    root = Path(root)
    if not root.is_dir():
        return
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def files_in(root: str | os.PathLike) -> list[Path]:
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
