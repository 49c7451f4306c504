"""Request and response bodies as the SageMaker XGBoost container reads and writes them.

CSV: no header, no label, delimiter sniffed from the first line, empty field = missing.
libsvm (also the default without a Content-Type): ``index:value`` tokens, zero-based.
Responses: a bare JSON list (the default) or one CSV line.
"""

from __future__ import annotations

import csv
import json

import numpy as np
from scipy import sparse

CSV_TYPES = ("text/csv", "csv")
LIBSVM_TYPES = ("text/libsvm", "text/x-libsvm", "libsvm")
JSON_ACCEPT = ("application/json", "json")
CSV_ACCEPT = ("text/csv", "csv")
DEFAULT_ACCEPT = "application/json"


class PayloadError(Exception):
    """The container cannot use this request: it answers 503, SageMaker turns that into a 424."""


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def decode(body: bytes, content_type: str | None, num_features: int) -> np.ndarray | sparse.csr_matrix:
    """The request's rows with the model's number of columns: a float32 matrix, or a sparse one
    (libsvm, or CSV rows shorter than the model) whose absent entries are missing values.

    Nothing is allocated beyond what the body holds: a row wider than the model, or a libsvm index
    at or beyond its feature count, is refused before any matrix is made."""
    media = media_type(content_type)
    if media in CSV_TYPES:
        return parse_csv(body, num_features)
    if media in LIBSVM_TYPES or not media:
        return parse_libsvm(body, num_features)
    raise PayloadError(
        f"Content type {content_type} is not supported by the XGBoost container; send text/csv (or text/libsvm)"
    )


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


def _too_wide(num_features: int, width: int) -> PayloadError:
    return PayloadError(f"Feature shape mismatch: the model expects {num_features} features, the request has {width}")


def parse_csv(body: bytes, num_features: int) -> np.ndarray | sparse.csr_matrix:
    text = _text(body).strip()
    if not text:
        raise PayloadError("the request body is empty: send one CSV row of features per line")
    lines = text.split("\n")
    delimiter = _delimiter(lines[0])
    width = lines[0].count(delimiter) + 1
    if width > num_features:  # refused before a cell is parsed
        raise _too_wide(num_features, width)
    rows = []
    for row_number, line in enumerate(lines, start=1):
        cells = line.split(delimiter)
        if len(cells) != width:
            raise PayloadError(f"CSV row {row_number} has {len(cells)} values, row 1 has {width}")
        try:  # float() takes what _cell takes but empty cells (missing values) and errors, which it words
            rows.append([float(cell) for cell in cells])
        except ValueError:
            rows.append([_cell(cell, row_number, col) for col, cell in enumerate(cells, start=1)])
    dense = np.asarray(rows, dtype=np.float32)
    if width == num_features:
        return dense
    # fewer features: the missing ones are missing values, as in the container; a sparse matrix of
    # the model's width holds them without allocating rows x features
    count = dense.shape[0]
    return sparse.csr_matrix(
        (dense.ravel(), np.tile(np.arange(width, dtype=np.int32), count), np.arange(0, count * width + 1, width)),
        shape=(count, num_features),
    )


def parse_libsvm(body: bytes, num_features: int) -> sparse.csr_matrix:
    """Sparse, as the container reads libsvm; an index is checked against the model before it is kept."""
    text = _text(body).strip()
    if not text:
        raise PayloadError("the request body is empty: send one libsvm row ('index:value ...') per line")
    lines = text.split("\n")
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for row_number, line in enumerate(lines, start=1):
        row: dict[int, float] = {}
        for token in line.split():
            if ":" not in token:
                continue  # a label, as in training files
            index_text, _, value_text = token.partition(":")
            negative = index_text.startswith("-")
            digits = index_text[1:] if negative else index_text
            try:
                if not (digits.isascii() and digits.isdigit()):
                    raise ValueError(index_text)
                value = float(value_text)
            except ValueError:
                raise PayloadError(f"libsvm row {row_number}: '{token[:40]}' is not index:value") from None
            if negative:
                raise PayloadError(f"libsvm row {row_number}: negative feature index {index_text[:40]}")
            significant = digits.lstrip("0") or "0"  # compared by length first: no int() of a huge number
            if len(significant) > len(str(num_features)) or (index := int(significant)) >= num_features:
                raise PayloadError(
                    f"Feature shape mismatch: libsvm row {row_number} has feature index {significant[:40]}; the model "
                    f"has {num_features} features (indices 0 to {num_features - 1})"
                )
            row[index] = value  # a repeated index: the last value counts
        for index in sorted(row):
            indices.append(index)
            values.append(row[index])
        indptr.append(len(indices))
    return sparse.csr_matrix(
        (np.asarray(values, dtype=np.float32), np.asarray(indices, dtype=np.int32), np.asarray(indptr, dtype=np.int64)),
        shape=(len(lines), num_features),
    )


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
