"""S3 made durable: after moto has accepted a change (a bucket or object created, copied,
completed or deleted), the change is written to the state store before the caller gets its answer;
at start, the stored buckets and objects are put back into moto.

A write copies what moto holds *now* for the key, under that key's lock: two writes of one key
(two PUTs, a PUT and a DELETE) cannot cross, and the last one to run, which started after moto's
last change, leaves moto's final state on disk, whatever order the writer threads ran in.

This is the one module that knows moto's S3 objects (``s3_backends``); everything else talks S3
over the wire, except training jobs' reads of their channels (``read_prefix``): a read changes
nothing to persist, and a thousand jobs' reads through HTTP to this same process cost more than
the training itself. Object data and user metadata are kept; ACLs, tags, versions and lifecycle rules
are not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from .config import ACCOUNT_ID
from .state import StateStore

MUTATING = {"PUT", "POST", "DELETE"}
KEPT_METADATA = ("content-type", "content-encoding", "content-disposition", "content-language", "cache-control")


@dataclass(frozen=True)
class S3Change:
    """What a successful S3 request changed: ``bucket``/``key`` created or deleted, or a bucket's
    keys to reconcile after a multi-object delete."""

    action: str  # "save-bucket", "drop-bucket", "save-object", "drop-object", "reconcile"
    bucket: str
    key: str = ""


def change_of(method: str, raw_path: bytes, query_string: bytes) -> S3Change | None:
    """The change a path-style S3 request makes if it succeeds; None for reads and for what is not
    kept (parts of an unfinished upload, ACLs, tags, ...)."""
    if method not in MUTATING:
        return None
    path = unquote(raw_path.decode("latin-1"))
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or bucket.startswith("_"):
        return None
    query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    if set(query) & {"acl", "tagging", "policy", "cors", "lifecycle", "versioning", "website", "encryption"}:
        return None
    if not key:
        if method == "PUT":
            return S3Change("save-bucket", bucket)
        if method == "DELETE":
            return S3Change("drop-bucket", bucket)
        if method == "POST" and "delete" in query:
            return S3Change("reconcile", bucket)
        return None
    if method == "PUT" and "partNumber" not in query:
        return S3Change("save-object", bucket, key)  # PutObject, CopyObject
    if method == "POST" and "uploadId" in query:
        return S3Change("save-object", bucket, key)  # CompleteMultipartUpload
    if method == "DELETE" and "uploadId" not in query:
        return S3Change("drop-object", bucket, key)
    return None


class KeyLocks:
    """A fixed set of locks, one per hash of ``(bucket, key)``: one key's writes never run at once
    (two keys rarely share a lock), and the set does not grow with the keys."""

    def __init__(self, stripes: int = 64):
        self.locks = [threading.Lock() for _ in range(stripes)]

    def __call__(self, bucket: str, key: str = "") -> threading.Lock:
        return self.locks[hash((bucket, key)) % len(self.locks)]


class S3Mirror:
    def __init__(self, store: StateStore, account_id: str = ACCOUNT_ID):
        self.store = store
        self.account_id = account_id
        self.locks = KeyLocks()

    def _backend(self):
        return _backend(self.account_id)

    def apply(self, change: S3Change) -> None:
        """Write a change moto has made to the store (runs in a worker thread)."""
        if change.action == "reconcile":
            self._reconcile(change.bucket)
            return
        with self.locks(change.bucket, change.key):
            bucket = self._backend().buckets.get(change.bucket)
            if change.action == "drop-bucket":
                if bucket is None:
                    self.store.drop_bucket(change.bucket)
            elif bucket is None:
                return
            elif change.action == "save-bucket":
                self.store.save_bucket(change.bucket, bucket.region_name)
            elif change.action in ("save-object", "drop-object"):
                self._copy_key(bucket, change.bucket, change.key)

    def _copy_key(self, bucket, bucket_name: str, key_name: str) -> None:
        """Make the stored key what moto holds now: saved, or dropped if moto has none (caller
        holds the key's lock)."""
        key = bucket.keys.get(key_name)
        if key is None:
            self.store.drop_object(bucket_name, key_name)
            return
        metadata = {
            name: value
            for name, value in dict(key.metadata).items()
            if name.startswith("x-amz-meta-") or name in KEPT_METADATA
        }
        self.store.save_object(bucket_name, key_name, key.value, metadata)
        if self._backend().buckets.get(bucket_name) is not bucket:  # emptied and deleted meanwhile
            self.store.drop_object(bucket_name, key_name)

    def _reconcile(self, bucket_name: str) -> None:
        """After a multi-object delete: drop every stored key moto no longer has, each checked
        again under its own lock (a PUT of it may have come in since)."""
        for key_name in self.store.object_keys(bucket_name):
            with self.locks(bucket_name, key_name):
                bucket = self._backend().buckets.get(bucket_name)
                if bucket is not None and bucket.keys.get(key_name) is None:
                    self.store.drop_object(bucket_name, key_name)

    def restore(self) -> int:
        """Put every stored bucket and object back into moto; returns how many objects."""
        backend = self._backend()
        restored = 0
        for record in self.store.buckets():
            name = record["name"]
            if name not in backend.buckets:
                backend.create_bucket(name, record.get("region", "us-east-1"))
            bucket = backend.buckets[name]
            for key, data_file, metadata in self.store.objects(name):
                if key in bucket.keys:  # never put an older copy over what moto holds
                    continue
                fake_key = backend.put_object(name, key, data_file.read_bytes())
                fake_key.set_metadata(metadata)
                restored += 1
        return restored


class NoSuchBucket(LookupError):
    pass


def _backend(account_id: str = ACCOUNT_ID):
    from moto.s3.models import s3_backends

    return s3_backends[account_id]["aws"]


def read_prefix(bucket_name: str, prefix: str, account_id: str = ACCOUNT_ID) -> list[tuple[str, bytes]]:
    """Every object under ``prefix`` (folder markers skipped), in key order, as moto holds it now:
    what ListObjectsV2 and GetObject would return, without the round trips."""
    bucket = _backend(account_id).buckets.get(bucket_name)
    if bucket is None:
        raise NoSuchBucket(bucket_name)
    for attempt in range(5):
        try:
            names = list(bucket.keys.keys())
            break
        except RuntimeError:  # a request thread added a key while we listed them: list again
            if attempt == 4:
                raise
    keys = sorted(key for key in names if key.startswith(prefix) and not key.endswith("/"))
    found = []
    for key in keys:
        stored = bucket.keys.get(key)
        if stored is not None:  # deleted meanwhile
            found.append((key, stored.value))
    return found
