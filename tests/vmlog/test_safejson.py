"""Tests of bounded JSON parsing: depth, size and non-finite numbers refused with a clear error, never a crash."""

from __future__ import annotations

import pytest

from vmlog import safejson


@pytest.mark.parametrize("depth", [65, 2000, 100_000])
def test_deep_nesting_is_refused_before_parsing(depth: int) -> None:
    for opener, closer in (("[", "]"), ('{"a":', "}")):
        with pytest.raises(safejson.UnsafeJson, match=f"nested {depth} levels deep"):
            safejson.loads(opener * depth + "1" + closer * depth, what="the catalog")


def test_brackets_inside_strings_do_not_count_and_sane_documents_parse() -> None:
    text = '{"a": ["[[[[", {"b": "\\"[{"}], "n": 1.5}'
    assert safejson.nesting_depth(text.encode()) == 3
    assert safejson.loads(text) == {"a": ["[[[[", {"b": '"[{'}], "n": 1.5}
    assert safejson.loads("[" * 64 + "]" * 64) is not None


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "[-Infinity]", '{"created": 1e999}'])
def test_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(safejson.UnsafeJson):
        safejson.loads(text, what="state.created")


def test_size_limit_and_malformed_json_are_value_errors() -> None:
    with pytest.raises(safejson.UnsafeJson, match="over the limit of 10"):
        safejson.loads(b'"' + b"x" * 20 + b'"', max_bytes=10)
    with pytest.raises(ValueError):
        safejson.loads(b"{not json")
    with pytest.raises(ValueError):
        safejson.loads(b"\xff\xfe")
