"""The little of ASGI the service needs: a request with a bounded body, and a response."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from hashlib import sha256
from urllib.parse import parse_qs


class BodyTooLarge(Exception):
    """The request body is larger than the handler accepts."""

    def __init__(self, limit: int, size: int | None):
        super().__init__(limit, size)
        self.limit = limit
        self.size = size


@dataclass(slots=True)
class Request:
    method: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: dict[str, str]
    receive: object = field(repr=False)
    body: bytes = b""
    header_values: dict[str, list[str]] = field(default_factory=dict)  # each one's values in order (signatures)
    body_read: bool = False
    too_large: BodyTooLarge | None = None

    @classmethod
    def from_scope(cls, scope, receive) -> Request:
        headers: dict[str, str] = {}
        values: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            found = values.get(key)
            if found is None:
                values[key] = [text]
                headers[key] = text
            else:
                found.append(text)
                headers[key] = ",".join(found)
        return cls(
            method=scope["method"],
            path=scope["path"],
            raw_path=scope.get("raw_path") or scope["path"].encode(),
            query_string=scope.get("query_string", b""),
            headers=headers,
            receive=receive,
            header_values=values,
        )

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string.decode("latin-1"), keep_blank_values=True)

    async def read_body(self, limit: int) -> bytes:
        """Read the whole body, refusing (before reading it all) anything over ``limit`` bytes.
        A second call answers the same (the signature check reads the body before the handler)."""
        if self.too_large is not None and self.too_large.limit <= limit:
            raise self.too_large
        if self.body_read:
            if len(self.body) > limit:
                raise BodyTooLarge(limit, len(self.body))
            return self.body
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self.too_large = BodyTooLarge(limit, int(declared))
            raise self.too_large
        chunks = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                self.too_large = BodyTooLarge(limit, None)
                raise self.too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self.body = b"".join(chunks)
        self.body_read = True
        return self.body

    async def hash_body(self, limit: int) -> str:
        """The SHA-256 of the whole body, however large, read as it streams: up to ``limit`` bytes
        are kept (``read_body`` then answers them); a larger body is hashed and dropped, and
        ``read_body`` refuses it. A signature covers the body's hash, so a forged one is refused
        whatever the size, and only then is the size answered."""
        if self.body_read:
            return sha256(self.body).hexdigest()
        digest = sha256()
        chunks: list[bytes] | None = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            digest.update(chunk)
            size += len(chunk)
            if chunks is not None:
                if size > limit:
                    chunks = None  # over the limit: hashed on, kept no more
                else:
                    chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if chunks is None:
            self.too_large = BodyTooLarge(limit, size)
        else:
            self.body = b"".join(chunks)
            self.body_read = True
        return digest.hexdigest()

    def replay(self):
        """An ASGI ``receive`` that hands the already read body on (to moto's app)."""
        sent = False

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            return await self.receive()

        return receive


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def json(cls, payload, status: int = 200, content_type: str = "application/json", headers=()) -> Response:
        return cls(
            status=status,
            body=json.dumps(payload, default=str).encode(),
            headers=[(b"content-type", content_type.encode()), *headers],
        )

    async def send(self, send) -> None:
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})
