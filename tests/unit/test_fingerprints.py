"""The keyed fingerprint functions: the sha256 path equals the value path, bad input is refused without echo."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from rescind.exceptions import InvalidInput
from rescind.fingerprints import (
    MIN_INDEXED_LENGTH,
    FingerprintEntry,
    IndexReport,
    entries_for_version,
    fingerprint_of_sha256,
    fingerprint_of_value,
)
from rescind.fingerprints.base import field_text
from rescind.fingerprints.dynamodb import sort_key

KEY = b"k" * 32
VALUE = "s3cr3t-value-\u00e9\u6f22"  # non-ASCII: UTF-8 is what gets hashed


def test_fingerprint_is_hmac_of_the_sha256_digest() -> None:
    expected = hmac.new(KEY, hashlib.sha256(VALUE.encode("utf-8")).digest(), hashlib.sha256).hexdigest()
    assert fingerprint_of_value(KEY, VALUE) == expected


def test_the_sha256_path_gives_the_same_fingerprint_in_either_case() -> None:
    sha256 = hashlib.sha256(VALUE.encode("utf-8")).hexdigest()
    assert fingerprint_of_sha256(KEY, sha256) == fingerprint_of_value(KEY, VALUE)
    assert fingerprint_of_sha256(KEY, sha256.upper()) == fingerprint_of_value(KEY, VALUE)


def test_the_key_matters() -> None:
    assert fingerprint_of_value(KEY, VALUE) != fingerprint_of_value(b"j" * 32, VALUE)
    assert fingerprint_of_value(KEY, VALUE) != hashlib.sha256(VALUE.encode()).hexdigest()


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "g" * 64, "a" * 63, "a" * 65, "zz" + "0" * 62, "0x" + "a" * 62, "a" * 32 + " " + "a" * 31],
)
def test_a_malformed_sha256_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        fingerprint_of_sha256(KEY, bad)
    assert str(refused.value) == "sha256 must be 64 hexadecimal characters"


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(InvalidInput):
        fingerprint_of_value(b"", VALUE)


def test_entries_skip_short_and_empty_values_and_fingerprint_non_strings_as_canonical_json() -> None:
    data = {
        "password": "correct-horse-battery",
        "pin": "1234",
        "empty": "",
        "exactly_min": "x" * MIN_INDEXED_LENGTH,
        "config": {"b": 1, "a": "long enough"},
        "port": 8080,
    }

    entries, skipped = entries_for_version(KEY, "secret", "app/db", 3, data)

    by_field = {entry.hit.field: entry for entry in entries}
    assert set(by_field) == {"password", "exactly_min", "config"}
    assert skipped == 3  # pin, empty, port ("8080")
    assert by_field["password"].fingerprint == fingerprint_of_value(KEY, "correct-horse-battery")
    assert field_text({"b": 1, "a": "long enough"}) == '{"a":"long enough","b":1}'
    assert by_field["config"].fingerprint == fingerprint_of_value(KEY, '{"a":"long enough","b":1}')
    assert {(e.hit.mount, e.hit.path, e.hit.version) for e in entries} == {("secret", "app/db", 3)}


def test_no_entry_or_report_holds_the_value() -> None:
    entries, _ = entries_for_version(KEY, "secret", "app", 1, {"token": VALUE})
    text = " ".join(repr(entry) + entry.model_dump_json() for entry in entries)
    assert VALUE not in text
    assert set(FingerprintEntry.model_fields) == {"fingerprint", "hit"}
    assert "value" not in IndexReport.model_fields


def test_sort_key_is_unique_per_field_and_bounded() -> None:
    entries, _ = entries_for_version(KEY, "secret", "a/b", 2, {"f|x": VALUE, "f": VALUE, "y" * 2000: VALUE})
    keys = [sort_key(entry.hit) for entry in entries]
    assert len(set(keys)) == 3
    assert all(len(key.encode()) <= 1024 for key in keys)
    assert keys[0] == "secret|a/b|2|f|x"


def test_reports_combine() -> None:
    first = IndexReport(mounts=("a",), secrets=1, versions=2, fingerprints=3, fields_skipped=1)
    second = IndexReport(mounts=("b", "a"), secrets=2, versions=2, fingerprints=2)
    assert first.combined_with(second) == IndexReport(
        mounts=("a", "b"), secrets=3, versions=4, fingerprints=5, fields_skipped=1
    )
