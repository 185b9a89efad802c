"""Sizes must mean to the runbooks exactly what they mean to Talos (go-humanize v1.0.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_lib.sizes import GiB, KiB, MiB, TiB, format_iec, format_si, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # go-humanize's own doc examples
        ("42MB", 42_000_000),
        ("42mib", 44_040_192),
        ("42 MB", 42_000_000),
        ("42 mib", 44_040_192),
        # the forms Talos documents and the runbooks use
        ("200GiB", 200 * GiB),
        ("100GB", 100 * 1000**3),
        ("100 GB", 100 * 1000**3),
        ("1.5TiB", 1536 * GiB),
        ("2.5GiB", 2560 * MiB),
        ("512MiB", 512 * MiB),
        ("100MB", 100_000_000),
        ("2GiB", 2 * GiB),
        # plain numbers are bytes
        ("5", 5),
        ("0", 0),
        ("214748364800", 200 * GiB),
        # units with and without the trailing b, any case
        ("1b", 1),
        ("1B", 1),
        ("1k", 1000),
        ("1K", 1000),
        ("1kb", 1000),
        ("1kB", 1000),
        ("1KB", 1000),
        ("1ki", KiB),
        ("1Ki", KiB),
        ("1KiB", KiB),
        ("1kib", KiB),
        ("1m", 1000**2),
        ("1mi", MiB),
        ("1G", 1000**3),
        ("1g", 1000**3),
        ("1gb", 1000**3),
        ("1Gi", GiB),
        ("1gib", GiB),
        ("1T", 1000**4),
        ("1TiB", TiB),
        ("1p", 1000**5),
        ("1PiB", 1024**5),
        ("1E", 1000**6),
        ("1EiB", 1024**6),
        ("1eb", 1000**6),
        # float arithmetic, then truncation, like uint64(f)
        ("1.1GB", 1_100_000_000),
        ("0.5KiB", 512),
        ("12.5 KiB", 12_800),
        ("0.0001KB", 0),
        (".5GB", 500_000_000),
        ("5.GB", 5_000_000_000),
        # commas are thousands separators and are dropped (even in odd places)
        ("1,000", 1000),
        ("1,000 MB", 1_000_000_000),
        ("1,5GB", 15_000_000_000),
        # whitespace after the number and after the unit is trimmed
        ("5GB ", 5_000_000_000),
        ("5 \t GB", 5_000_000_000),
        # the largest values below 2**64
        ("18.4EB", 18_399_999_999_999_997_952),  # 18.4 * 1e18 in float64, as Go computes it
        ("15EiB", 15 * 1024**6),
    ],
)
def test_parse_size_matches_go_humanize(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-1GB", "negative"),
        ("GB", "does not start with a number"),
        (" 5GB", "does not start with a number"),  # ParseBytes does not skip leading space
        ("1.2.3GB", "not a number"),
        (".", "not a number"),
        ("1 XB", "unknown unit"),
        ("1 GiBs", "unknown unit"),
        ("1e3", "unknown unit"),  # no exponents: 'e3' is the unit
        ("1 gigabyte", "unknown unit"),
        ("16EiB", "too large"),
        ("18.5EB", "too large"),
    ],
)
def test_parse_size_rejects_what_talos_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_size(text)


def test_parse_size_takes_ints_as_bytes() -> None:
    assert parse_size(0) == 0
    assert parse_size(500_000_000_000) == 500_000_000_000
    with pytest.raises(ValueError, match="negative"):
        parse_size(-1)
    with pytest.raises(ValueError, match="too large"):
        parse_size(2**64)


@pytest.mark.parametrize("bad", [True, 1.5, None, ["1GB"]])
def test_parse_size_rejects_other_types(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (9, "9 B"),
        (10, "10 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1500, "1.5 kB"),
        (1550, "1.6 kB"),
        (82_854_982, "83 MB"),  # go-humanize's doc example
        (10_485_760_000, "10 GB"),  # 10.48576 rounds to 10.5, printed with %.0f
        (9_949_999_999, "9.9 GB"),
        (9_950_000_000, "10 GB"),  # rounded to 10.0 first, so %.0f applies
        (107_374_182_400, "107 GB"),
        (200 * GiB, "215 GB"),
        (200_000_000_000, "200 GB"),
        (500_000_000_000, "500 GB"),
        (999_999, "1000 kB"),  # go-humanize picks the unit before rounding
        (2**64 - 1, "18 EB"),
    ],
)
def test_format_si_matches_humanize_bytes(n: int, expected: str) -> None:
    assert format_si(n) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (82_854_982, "79 MiB"),  # go-humanize's doc example
        (100 * GiB, "100 GiB"),
        (200 * GiB, "200 GiB"),
        (500_000_000_000, "466 GiB"),
        (2 * GiB, "2.0 GiB"),
        (2**64 - 1, "16 EiB"),
    ],
)
def test_format_iec_matches_humanize_ibytes(n: int, expected: str) -> None:
    assert format_iec(n) == expected


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_format_rejects_bad_counts(bad: object) -> None:
    with pytest.raises(ValueError):
        format_si(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        format_iec(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=2**53))
def test_plain_numbers_round_trip(n: int) -> None:
    assert parse_size(str(n)) == n
    assert parse_size(f"{n} B") == n


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["KiB", "MiB", "GiB", "kB", "MB", "GB"]))
def test_whole_units_are_exact(n: int, unit: str) -> None:
    factor = {"KiB": KiB, "MiB": MiB, "GiB": GiB, "kB": 1000, "MB": 1000**2, "GB": 1000**3}[unit]
    assert parse_size(f"{n}{unit}") == n * factor
    assert parse_size(f"{n} {unit.upper()}") == n * factor
