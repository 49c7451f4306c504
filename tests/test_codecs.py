"""Request and response bodies, as the XGBoost container reads and writes them."""

import numpy as np
import pytest

from mme_helpers.local.runtime import codecs


def dense(rows):
    """A decoded matrix as a dense array, absent sparse entries as missing values."""
    if hasattr(rows, "toarray"):
        filled = np.full(rows.shape, np.nan, dtype=np.float32)
        coo = rows.tocoo()
        filled[coo.row, coo.col] = coo.data
        return filled
    return rows


def test_csv_rows_delimiters_and_missing_values():
    rows = codecs.decode(b"1,2,3\n4,,6\r\n", "text/csv", 3)
    assert rows.shape == (2, 3) and np.isnan(rows[1, 1]) and rows[1, 2] == 6
    assert codecs.decode(b"1;2;3", "text/csv", 3).tolist() == [[1, 2, 3]]
    short = dense(codecs.decode(b"7,0", "csv", 3))
    assert short.shape == (1, 3) and short[0, 0] == 7 and short[0, 1] == 0 and np.isnan(short[0, 2])


def test_libsvm_ignores_labels_and_fills_missing():
    rows = dense(codecs.decode(b"5 0:1 2:3\n1:2 1:0 00002:4", "text/libsvm", 3))
    assert rows[0, 0] == 1 and np.isnan(rows[0, 1]) and rows[0, 2] == 3
    assert np.isnan(rows[1, 0]) and rows[1, 1] == 0 and rows[1, 2] == 4  # a repeated index: the last value


def test_decoded_rows_predict_as_their_dense_form():
    from conftest import train_booster

    booster = train_booster()
    expected = booster.inplace_predict(np.array([[1, 0, np.nan, 4, np.nan, np.nan]], dtype=np.float32))
    for body, content_type in ((b"0:1 1:0 3:4", "libsvm"), (b"1,0,,4", "text/csv")):
        got = booster.inplace_predict(codecs.decode(body, content_type, 6), validate_features=False)
        assert got.tolist() == expected.tolist(), content_type


@pytest.mark.parametrize(
    "body, content_type, message",
    [
        (b"1,2,3,4", "text/csv", "expects 3 features, the request has 4"),
        (b"0:1 9:1", "libsvm", "libsvm row 1 has feature index 9; the model has 3 features"),
        (b"0:1\n3:1", "libsvm", "libsvm row 2 has feature index 3; the model has 3 features"),
        (b"0:1 " + b"9" * 5000 + b":1", "libsvm", "has feature index 99999"),
        (b"a:b", "libsvm", "is not index:value"),
        (b"+1:2", "libsvm", "is not index:value"),
        (b"-1:3", "libsvm", "negative feature index"),
        (b"   ", "text/csv", "empty"),
        (b"\n", "libsvm", "empty"),
        (b"{}", "application/json", "not supported"),
    ],
)
def test_bad_payloads(body, content_type, message):
    with pytest.raises(codecs.PayloadError, match=message):
        codecs.decode(body, content_type, 3)


def test_a_row_wider_than_the_model_is_refused_before_its_cells_are_read():
    with pytest.raises(codecs.PayloadError, match="the request has 4$"):
        codecs.decode(b"1,2,3,x\n1,2", "text/csv", 3)  # not "'x' is not a number" nor the ragged row


def test_accept_and_encoding():
    predictions = np.array([309167.28125, 1.5], dtype=np.float32)
    assert codecs.choose_accept(None) == codecs.choose_accept("*/*") == "application/json"
    assert codecs.choose_accept(None, "text/csv") == "text/csv"
    assert codecs.encode(predictions, "application/json") == b"[309167.28125, 1.5]"
    assert codecs.encode(predictions, "text/csv") == b"309167.28,1.5"
    for accept in ("application/jsonlines", "text/csv; charset=utf-8", "application/json,text/csv"):
        with pytest.raises(codecs.PayloadError):
            codecs.choose_accept(accept)
