"""Request and response bodies as the SageMaker XGBoost container reads and writes them.

CSV: no header, no label, delimiter sniffed from the first line, empty field = missing.
libsvm (also the default without a Content-Type): ``index:value`` tokens, zero-based.
Responses: a bare JSON list (the default) or one CSV line.
"""

from __future__ import annotations

import csv
import json

import numpy as np

CSV_TYPES = ("text/csv", "csv")
LIBSVM_TYPES = ("text/libsvm", "text/x-libsvm", "libsvm")
JSON_ACCEPT = ("application/json", "json")
CSV_ACCEPT = ("text/csv", "csv")
DEFAULT_ACCEPT = "application/json"


class PayloadError(Exception):
    """The container cannot use this request: it answers 503, SageMaker turns that into a 424."""


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def decode(body: bytes, content_type: str | None, num_features: int) -> np.ndarray:
    """The request's rows as a float32 matrix with the model's number of columns."""
    media = media_type(content_type)
    if media in CSV_TYPES:
        rows = parse_csv(body)
    elif media in LIBSVM_TYPES or not media:
        rows = parse_libsvm(body, num_features)
    else:
        raise PayloadError(
            f"Content type {content_type} is not supported by the XGBoost container; send text/csv (or text/libsvm)"
        )
    width = rows.shape[1]
    if width > num_features:
        raise PayloadError(f"Feature shape mismatch: the model expects {num_features} features, the request has {width}")
    if width < num_features:  # fewer features: the missing ones are missing values, as in the container
        padded = np.full((rows.shape[0], num_features), np.nan, dtype=np.float32)
        padded[:, :width] = rows
        rows = padded
    return rows


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"the request body is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _delimiter(first_line: str) -> str:
    if "," in first_line:
        return ","
    try:
        sniffed = csv.Sniffer().sniff(first_line[:512]).delimiter
    except csv.Error:
        return ","  # one column: nothing to sniff
    return "," if sniffed.isalnum() else sniffed


def _cell(text: str, row: int, column: int) -> float:
    text = text.strip()
    if not text:
        return np.nan
    try:
        return float(text)
    except ValueError:
        raise PayloadError(f"CSV row {row}, column {column}: '{text[:40]}' is not a number") from None


def parse_csv(body: bytes) -> np.ndarray:
    text = _text(body).strip()
    if not text:
        raise PayloadError("the request body is empty: send one CSV row of features per line")
    lines = text.split("\n")
    delimiter = _delimiter(lines[0])
    width = None
    rows = []
    for row_number, line in enumerate(lines, start=1):
        cells = line.split(delimiter)
        if width is None:
            width = len(cells)
        elif len(cells) != width:
            raise PayloadError(f"CSV row {row_number} has {len(cells)} values, row 1 has {width}")
        rows.append([_cell(cell, row_number, col) for col, cell in enumerate(cells, start=1)])
    return np.asarray(rows, dtype=np.float32)


def parse_libsvm(body: bytes, num_features: int) -> np.ndarray:
    text = _text(body).strip()
    if not text:
        raise PayloadError("the request body is empty: send one libsvm row ('index:value ...') per line")
    lines = text.split("\n")
    entries = []
    width = num_features
    for row_number, line in enumerate(lines):
        for token in line.split():
            if ":" not in token:
                continue  # a label, as in training files
            index_text, _, value_text = token.partition(":")
            try:
                index, value = int(index_text), float(value_text)
            except ValueError:
                raise PayloadError(f"libsvm row {row_number + 1}: '{token[:40]}' is not index:value") from None
            if index < 0:
                raise PayloadError(f"libsvm row {row_number + 1}: negative feature index {index}")
            width = max(width, index + 1)
            entries.append((row_number, index, value))
    rows = np.full((len(lines), width), np.nan, dtype=np.float32)
    for row, index, value in entries:
        rows[row, index] = value
    return rows


def choose_accept(accept: str | None, model_default: str | None = None) -> str:
    """The response type: Accept, or the model's default, or JSON."""
    wanted = (accept or "").strip()
    if not wanted or wanted == "*/*":
        wanted = model_default or DEFAULT_ACCEPT
    if wanted.lower() in JSON_ACCEPT + CSV_ACCEPT:
        return wanted
    raise PayloadError(f"Accept type {wanted} is not supported by the XGBoost container; use application/json or text/csv")


def encode(predictions: np.ndarray, accept: str) -> bytes:
    if media_type(accept) in CSV_ACCEPT:
        return ",".join(map(str, predictions)).encode()
    return json.dumps(predictions.tolist()).encode()
