"""Request and response bodies, as the XGBoost container reads and writes them."""

import numpy as np
import pytest

from mme_helpers.local.runtime import codecs


def test_csv_rows_delimiters_and_missing_values():
    rows = codecs.decode(b"1,2,3\n4,,6\r\n", "text/csv", 3)
    assert rows.shape == (2, 3) and np.isnan(rows[1, 1]) and rows[1, 2] == 6
    assert codecs.decode(b"1;2;3", "text/csv", 3).tolist() == [[1, 2, 3]]
    assert codecs.decode(b"7", "csv", 3)[0, 0] == 7 and np.isnan(codecs.decode(b"7", "csv", 3)[0, 2])


def test_libsvm_ignores_labels_and_fills_missing():
    rows = codecs.decode(b"5 0:1 2:3\n1:2", "text/libsvm", 3)
    assert rows[0, 0] == 1 and np.isnan(rows[0, 1]) and rows[0, 2] == 3 and rows[1, 1] == 2


@pytest.mark.parametrize(
    "body, content_type, message",
    [
        (b"1,2,3,4", "text/csv", "expects 3 features, the request has 4"),
        (b"0:1 9:1", "libsvm", "expects 3 features, the request has 10"),
        (b"a:b", "libsvm", "is not index:value"),
        (b"-1:3", "libsvm", "negative feature index"),
        (b"   ", "text/csv", "empty"),
        (b"{}", "application/json", "not supported"),
    ],
)
def test_bad_payloads(body, content_type, message):
    with pytest.raises(codecs.PayloadError, match=message):
        codecs.decode(body, content_type, 3)


def test_accept_and_encoding():
    predictions = np.array([309167.28125, 1.5], dtype=np.float32)
    assert codecs.choose_accept(None) == codecs.choose_accept("*/*") == "application/json"
    assert codecs.choose_accept(None, "text/csv") == "text/csv"
    assert codecs.encode(predictions, "application/json") == b"[309167.28125, 1.5]"
    assert codecs.encode(predictions, "text/csv") == b"309167.28,1.5"
    for accept in ("application/jsonlines", "text/csv; charset=utf-8", "application/json,text/csv"):
        with pytest.raises(codecs.PayloadError):
            codecs.choose_accept(accept)
