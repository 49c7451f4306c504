"""The service's state on disk (``<home>/state``), so that it survives ``stop``/``start`` and a
``kill -9``: every SageMaker resource as one JSON file, every S3 object as a data file and a JSON
file of its key and metadata. A write is a new file, flushed to the disk (``fsync``), renamed into
place, and then the rename itself flushed (``fsync`` of the folder): a process killed mid-write
leaves the previous version, never half of one, and what was written before an answer went out
survives a power cut or a reboot too. A delete is flushed the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .private_files import private_folder, tighten, write_private

STATE_FOLDER = "state"


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename, a new or deleted file) to the disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folder(folder: Path) -> None:
    """``mkdir -p``, each new folder's entry flushed in its parent (else a reboot can lose the folder
    and every file in it)."""
    if folder.is_dir():
        return
    _make_folder(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:
        return
    _sync_folder(folder.parent)


def _write_atomically(path: Path, data: bytes, *more: tuple[Path, bytes]) -> None:
    """Write each file whole and synced under a temporary name, rename them into place in order,
    then sync their folder once (``more``: further files of the same folder)."""
    _make_folder(path.parent)
    renames = []
    for target, content in ((path, data), *more):
        temporary = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
        with open(temporary, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        renames.append((temporary, target))
    for temporary, target in renames:
        os.replace(temporary, target)
    _sync_folder(path.parent)


def _remove(*paths: Path) -> None:
    """Delete files (missing ones are fine) and flush their folders."""
    removed = False
    for path in paths:
        try:
            path.unlink()
            removed = True
        except FileNotFoundError:
            pass
    if removed:
        for folder in dict.fromkeys(path.parent for path in paths):
            _sync_folder(folder)


def _name(text: str) -> str:
    """A file name for any resource name or S3 key (keys may hold '/', spaces, anything)."""
    return hashlib.sha256(text.encode()).hexdigest()[:40]


class StateStore:
    def __init__(self, home: Path):
        self.root = Path(home) / STATE_FOLDER
        self.sagemaker = self.root / "sagemaker"
        self.s3 = self.root / "s3"

    # SageMaker resources ---------------------------------------------------------------------------

    def save_resource(self, kind: str, name: str, record: dict[str, Any]) -> None:
        _write_atomically(self.sagemaker / kind / f"{_name(name)}.json", json.dumps(record).encode())

    def drop_resource(self, kind: str, name: str) -> None:
        _remove(self.sagemaker / kind / f"{_name(name)}.json")

    def resources(self, kind: str) -> list[dict[str, Any]]:
        folder = self.sagemaker / kind
        records = []
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # unreadable: skipped rather than stopping the service from starting
        return records

    # S3 ------------------------------------------------------------------------------------------------

    def _bucket_folder(self, bucket: str) -> Path:
        return self.s3 / _name(bucket)

    def save_bucket(self, bucket: str, region: str) -> None:
        _write_atomically(
            self._bucket_folder(bucket) / "bucket.json", json.dumps({"name": bucket, "region": region}).encode()
        )

    def drop_bucket(self, bucket: str) -> None:
        folder = self._bucket_folder(bucket)
        if folder.exists():
            _remove(folder / "bucket.json")  # first: without it the folder is not restored
            shutil.rmtree(folder, ignore_errors=True)
            _sync_folder(self.s3)

    def save_object(self, bucket: str, key: str, data: bytes, metadata: dict[str, str]) -> None:
        folder = self._bucket_folder(bucket) / "objects"
        name = _name(key)
        # the data is renamed into place before its record: a record always finds its data whole
        record = json.dumps({"key": key, "metadata": metadata}).encode()
        _write_atomically(folder / f"{name}.data", data, (folder / f"{name}.json", record))

    def drop_object(self, bucket: str, key: str) -> None:
        folder = self._bucket_folder(bucket) / "objects"
        name = _name(key)
        _remove(folder / f"{name}.json", folder / f"{name}.data")  # the record first: without it the data is ignored

    def buckets(self) -> list[dict[str, str]]:
        found = []
        for path in sorted(self.s3.glob("*/bucket.json")) if self.s3.exists() else []:
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return found

    def objects(self, bucket: str) -> Iterator[tuple[str, Path, dict[str, str]]]:
        """``(key, data file, metadata)`` of every object saved whole."""
        folder = self._bucket_folder(bucket) / "objects"
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            data = path.with_suffix(".data")
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if data.exists():
                yield record["key"], data, record.get("metadata", {})

    def object_keys(self, bucket: str) -> set[str]:
        return {key for key, _, _ in self.objects(bucket)}

    # the service's credentials ----------------------------------------------------------------------

    def credentials(self, generate) -> tuple[str, str]:
        """The access key pair this state answers to: made once by ``generate()`` and kept, so that
        kernels and scripts holding it keep working across restarts (``reset`` makes a new one)."""
        path = self.root / "credentials.json"
        if self.root.is_dir():
            tighten(self.root)  # a state folder left 0755 by an older version
        try:
            stored = json.loads(path.read_text())
            return stored["access_key_id"], stored["secret_access_key"]
        except (OSError, ValueError, KeyError):
            pass
        key, secret = generate()
        tighten(private_folder(self.root))
        write_private(path, json.dumps({"access_key_id": key, "secret_access_key": secret}))
        return key, secret

    # everything ----------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything (``python -m mme_helpers.local reset``)."""
        shutil.rmtree(self.root, ignore_errors=True)
