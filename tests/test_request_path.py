"""The pieces every request goes through, made cheap for the warm path, against their reference:
HMAC-SHA256 against ``hmac``, the Authorization header read once against the regular expression
that read it before, request ids against ``uuid``, the CSV fast path against its words."""

import hmac
import os
import uuid

import numpy as np
import pytest

from mme_helpers.local import sigv4
from mme_helpers.local.runtime import codecs
from mme_helpers.local.runtime.invocations import new_request_id

SIGNATURE = "0" * 64
WELL_FORMED = f"AWS4-HMAC-SHA256 Credential=AKID/20261204/us-west-2/sagemaker/aws4_request, SignedHeaders=host;x-amz-date, Signature={SIGNATURE}"  # noqa: E501


@pytest.mark.parametrize("key_length", [0, 1, 31, 32, 63, 64, 65, 200])
def test_hmac_sha256_is_rfc_2104_for_every_key_length(key_length):
    key = os.urandom(key_length)
    for message in (b"", b"x", os.urandom(300)):
        assert sigv4.HmacSha256(key).hexdigest(message) == hmac.digest(key, message, "sha256").hex()


def _by_search(header: str) -> sigv4.CredentialScope | None:
    match = sigv4._HEADER.search(header)
    return sigv4.CredentialScope(*match.groups()) if match else None


@pytest.mark.parametrize(
    "header",
    [
        WELL_FORMED,
        WELL_FORMED.replace(", ", ","),
        "  " + WELL_FORMED + "  ",
        WELL_FORMED.replace("20261204", "2026120"),  # a date of 7 digits: no scope
        WELL_FORMED.replace("20261204", "２０２６１２０４"),  # digits of another script: the pattern's \d takes them
        WELL_FORMED.replace("AKID", ""),  # no key
        WELL_FORMED.replace("/us-west-2/", "//"),  # no region
        WELL_FORMED.replace("aws4_request,", "aws4_requestX,"),  # the pattern reads a scope in it anyway
        WELL_FORMED.replace("SignedHeaders=host", "SignedHeaders=Credential=K/20260101/eu-west-1/s3/aws4_request"),
        WELL_FORMED.replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256\t"),
        "AWS AKID:c2lnbmF0dXJl",  # SigV2: no scope
        "Credential=AKID/20261204/us-west-2/s3/aws4_request",
    ],
)
def test_the_credential_scope_is_the_one_the_pattern_reads(header):
    """Read once for routing and checking; the answer is the search's, for well- and ill-formed headers."""
    sigv4._authorization_parts.cache_clear()
    assert sigv4.credential_scope(header) == _by_search(header)


def test_request_ids_are_random_version_4_uuids():
    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize(
    "body, expected",
    [
        (b" 1 , 2 ,3\t", [[1, 2, 3]]),
        (b"1, ,3", [[1, float("nan"), 3]]),
        (b"nan,inf,-1e3", [[float("nan"), float("inf"), -1000]]),
        (b"1_000,2,3", [[1000, 2, 3]]),  # what float() reads, in both paths
    ],
)
def test_csv_cells_read_as_the_container_reads_them(body, expected):
    np.testing.assert_array_equal(codecs.decode(body, "text/csv", 3), np.array(expected, dtype=np.float32))


@pytest.mark.parametrize(
    "body, message",
    [
        (b"1,x,3", "CSV row 1, column 2: 'x' is not a number"),
        (b"1,2,3\n4,5,six", "CSV row 2, column 3: 'six' is not a number"),
    ],
)
def test_a_cell_that_is_not_a_number_is_named(body, message):
    with pytest.raises(codecs.PayloadError, match=message):
        codecs.decode(body, "text/csv", 3)
