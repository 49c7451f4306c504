"""An instance's disk cache of unpacked models, owned by the model-load threads.

AWS keeps a downloaded model on the instance's disk after it is unloaded from memory, and deletes it
"only when the disk is full". Here the disk has a byte budget with least-recently-used eviction, and
a full disk (ENOSPC) deletes every other copy it may before one more try.

Only model-load threads unpack, read and delete copies (the event loop never waits on the disk): the
lock guards the bookkeeping alone and is never held while a file is written or deleted. A copy that
a load is reading is checked out and never deleted under it; each copy has its own folder, so a copy
being deleted and a new copy of the same model never share files.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import shutil
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

from .artifacts import ArtifactError, extract


class DiskFull(ArtifactError):
    """No room on the disk for the model, even after deleting every copy that could go."""


class CacheClosed(ArtifactError):
    """The endpoint is being deleted: its cache takes no more copies."""


@dataclass(frozen=True)
class CachedCopy:
    target: str
    folder: Path
    size: int  # what it takes on the disk: the unpacked files and the downloaded archive


class DiskCache:
    def __init__(self, root: Path, budget: int):
        self.root = root
        self.budget = budget  # also the most one artifact may unpack to
        self.lock = threading.Lock()
        self.copies: OrderedDict[str, CachedCopy] = OrderedDict()  # least recently used first
        self.used = 0
        self.reading: Counter[Path] = Counter()  # copies checked out by a load
        self.closed = False
        self._numbers = itertools.count()
        root.mkdir(parents=True, exist_ok=True)

    # a load's use of the cache -------------------------------------------------------------------

    def checkout(self, target: str) -> CachedCopy | None:
        """The model's copy on disk, now the most recently used, kept until ``checkin``."""
        with self.lock:
            copy = self.copies.get(target)
            if copy is not None:
                self.copies.move_to_end(target)
                self.reading[copy.folder] += 1
            return copy

    def checkin(self, copy: CachedCopy) -> None:
        with self.lock:
            self.reading[copy.folder] -= 1
            if self.reading[copy.folder] <= 0:
                del self.reading[copy.folder]

    def store(self, target: str, archive: bytes) -> CachedCopy:
        """Unpack a downloaded artifact into a new folder and keep it, checked out (call ``checkin``);
        older copies are deleted to keep within the budget."""
        folder = self._new_folder(target)
        for attempt in (1, 2):
            try:
                size = extract(archive, folder, self.budget) + len(archive)
                break
            except ArtifactError as exc:
                shutil.rmtree(folder, ignore_errors=True)
                if not _disk_full(exc):
                    raise
                freed = self.trim(limit=0)
                if attempt == 2 or not freed:
                    raise DiskFull(
                        f"no space left on the instance's disk for model {target}, even after deleting {freed} "
                        "cached model(s)"
                    ) from exc
        copy = CachedCopy(target, folder, size)
        with self.lock:
            closed = self.closed
            if closed:
                stale = [copy]
            else:
                replaced = self.copies.pop(target, None)
                stale = [replaced] if replaced is not None else []
                if replaced is not None:
                    self.used -= replaced.size
                self.copies[target] = copy
                self.used += size
                self.reading[folder] += 1
                stale += self._over_budget(self.budget)
        _delete(stale)
        if closed:
            raise CacheClosed("the endpoint is being deleted")
        return copy

    # deleting -------------------------------------------------------------------------------------

    def trim(self, limit: int | None = None) -> int:
        """Delete least recently used copies until the cache is within ``limit`` (default: the
        budget; 0 deletes all it may). Returns how many were deleted."""
        with self.lock:
            stale = self._over_budget(self.budget if limit is None else limit)
        _delete(stale)
        return len(stale)

    def _over_budget(self, limit: int) -> list[CachedCopy]:
        """Take copies out of the books until within ``limit``, never one being read (lock held)."""
        stale = []
        for target, copy in list(self.copies.items()):
            if self.used <= limit:
                break
            if copy.folder in self.reading:
                continue
            del self.copies[target]
            self.used -= copy.size
            stale.append(copy)
        return stale

    def discard(self, copy: CachedCopy) -> None:
        """Delete this copy (``ModelCacheSetting: Disabled`` deletes a model right after its use)."""
        with self.lock:
            if self.copies.get(copy.target) is copy and copy.folder not in self.reading:
                del self.copies[copy.target]
                self.used -= copy.size
            elif copy.folder in self.reading:
                return
        _delete([copy])

    def close(self) -> None:
        """Delete the whole cache; copies stored later are deleted at once."""
        with self.lock:
            self.closed = True
            self.copies.clear()
            self.used = 0
        shutil.rmtree(self.root, ignore_errors=True)

    # inspection -----------------------------------------------------------------------------------

    def holding(self) -> tuple[set[str], int]:
        """The models on disk and the bytes they take."""
        with self.lock:
            return set(self.copies), self.used

    def _new_folder(self, target: str) -> Path:
        with self.lock:
            number = next(self._numbers)
        return self.root / f"{hashlib.sha256(target.encode()).hexdigest()[:32]}-{number}"


def _delete(copies: list[CachedCopy]) -> None:
    for copy in copies:
        shutil.rmtree(copy.folder, ignore_errors=True)


def _disk_full(error: BaseException) -> bool:
    cause = error.__cause__
    return isinstance(cause, OSError) and cause.errno == errno.ENOSPC
