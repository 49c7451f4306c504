"""S3 made durable: after moto has accepted a change (a bucket or object created, copied,
completed or deleted), the change is written to the state store before the caller gets its answer;
at start, the stored buckets and objects are put back into moto.

This is the one module that knows moto's S3 objects (``s3_backends``); everything else talks S3
over the wire, except training jobs' reads of their channels (``read_prefix``): a read changes
nothing to persist, and a thousand jobs' reads through HTTP to this same process cost more than
the training itself. Object data and user metadata are kept; ACLs, tags, versions and lifecycle rules
are not.
"""

from __future__ import annotations

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


class S3Mirror:
    def __init__(self, store: StateStore, account_id: str = ACCOUNT_ID):
        self.store = store
        self.account_id = account_id

    def _backend(self):
        return _backend(self.account_id)

    def apply(self, change: S3Change) -> None:
        """Write a change moto has made to the store (runs in a worker thread)."""
        buckets = self._backend().buckets
        bucket = buckets.get(change.bucket)
        if change.action == "drop-bucket":
            if bucket is None:
                self.store.drop_bucket(change.bucket)
        elif bucket is None:
            return
        elif change.action == "save-bucket":
            self.store.save_bucket(change.bucket, bucket.region_name)
        elif change.action == "save-object":
            key = bucket.keys.get(change.key)
            if key is not None:
                metadata = {
                    name: value
                    for name, value in dict(key.metadata).items()
                    if name.startswith("x-amz-meta-") or name in KEPT_METADATA
                }
                self.store.save_object(change.bucket, change.key, key.value, metadata)
        elif change.action == "drop-object":
            if bucket.keys.get(change.key) is None:
                self.store.drop_object(change.bucket, change.key)
        elif change.action == "reconcile":
            present = set(bucket.keys.keys())
            for key in self.store.object_keys(change.bucket) - present:
                self.store.drop_object(change.bucket, key)

    def restore(self) -> int:
        """Put every stored bucket and object back into moto; returns how many objects."""
        backend = self._backend()
        restored = 0
        for record in self.store.buckets():
            name = record["name"]
            if name not in backend.buckets:
                backend.create_bucket(name, record.get("region", "us-east-1"))
            for key, data_file, metadata in self.store.objects(name):
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
