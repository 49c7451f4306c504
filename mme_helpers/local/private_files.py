"""Files only the service's user may read: its credentials (``state/credentials.json``) and what
it publishes about itself (``service.json``, which holds the secret key too).

A secret file is created 0600 by ``os.open`` itself, whatever the umask, and renamed into place:
it is never, even for an instant, readable by anyone else (writing it first and ``chmod``-ing it
after leaves a window). The folders that hold them are 0700.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


def private_folder(path: Path) -> Path:
    """``path`` made (with its parents) if missing; a folder made here is 0700 from the start."""
    if not path.is_dir():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=PRIVATE_FOLDER)
        except FileExistsError:
            pass  # made by another process in between
    return path


def tighten(path: Path) -> None:
    """A folder of our own (the state folder) made 0700 even if an older version left it 0755."""
    if path.stat().st_mode & 0o777 != PRIVATE_FOLDER:
        path.chmod(PRIVATE_FOLDER)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a 0600 file, atomically (a reader sees the old or the new)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # left by a process killed mid-write: O_EXCL needs it gone
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
