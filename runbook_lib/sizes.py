"""Byte sizes, parsed and printed exactly the way Talos does.

Talos reads ``minSize``/``maxSize`` with go-humanize ``ParseBytes`` (Talos
``pkg/machinery/config/types/block/byte_size.go``) and prints ``prettySize`` /
``pretty_size`` with go-humanize ``Bytes``. A size that means one thing to the
runbooks and another to Talos would place partitions where nobody expects them,
so this module reproduces go-humanize v1.0.1 (``bytes.go``, the version Talos
pins) rule for rule instead of using a friendlier Python parser:

* ``ParseBytes``: take the leading run of ASCII digits, ``.`` and ``,`` (commas
  are dropped), parse it as a float, then look up the rest, trimmed and
  lower-cased, in ``bytesSizeTable``. The table has every unit with and without
  the trailing ``b``: ``"gb"``/``"g"`` mean 1000**3 and ``"gib"``/``"gi"`` mean
  1024**3; ``""`` and ``"b"`` mean bytes. The product is truncated to an integer,
  and anything >= 2**64 is "too large".
* ``humanateBytes``: below 10 it prints ``"<n> B"``. Otherwise it picks the unit
  ``floor(log(n)/log(base))``, rounds the value to one decimal with
  ``floor(v*10+0.5)/10`` and prints it with ``%.1f`` when that value is below 10,
  else with ``%.0f``, followed by a space and the unit (``kB`` is lower case for SI).
"""

from __future__ import annotations

import math

__all__ = [
    "GiB",
    "KiB",
    "MiB",
    "TiB",
    "format_iec",
    "format_si",
    "parse_size",
]

KiB = 1024
MiB = 1024**2
GiB = 1024**3
TiB = 1024**4

_UINT64_LIMIT = 2**64

# go-humanize bytesSizeTable (bytes.go): IEC and SI units, with and without the
# trailing "b". Keys are lower case because ParseBytes lower-cases the unit.
_UNIT_TABLE: dict[str, int] = {
    "": 1,
    "b": 1,
    "kib": 1024,
    "ki": 1024,
    "kb": 1000,
    "k": 1000,
    "mib": 1024**2,
    "mi": 1024**2,
    "mb": 1000**2,
    "m": 1000**2,
    "gib": 1024**3,
    "gi": 1024**3,
    "gb": 1000**3,
    "g": 1000**3,
    "tib": 1024**4,
    "ti": 1024**4,
    "tb": 1000**4,
    "t": 1000**4,
    "pib": 1024**5,
    "pi": 1024**5,
    "pb": 1000**5,
    "p": 1000**5,
    "eib": 1024**6,
    "ei": 1024**6,
    "eb": 1000**6,
    "e": 1000**6,
}

_SI_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
_IEC_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

_NUMBER_CHARS = frozenset("0123456789.,")


def parse_size(text: str | int) -> int:
    """Return the number of bytes ``text`` stands for, as Talos would read it.

    Accepts a non-negative ``int`` (already bytes) or a go-humanize string such
    as ``"200GiB"``, ``"100 GB"``, ``"1.5TiB"``, ``"512mi"`` or ``"1,000"``.
    Raises :class:`ValueError` naming the problem for anything Talos would reject
    (and for an empty value, which Talos would silently treat as "not set").
    """
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ValueError(
            f"a size must be a string like '200GiB' or a number of bytes, not {type(text).__name__}"
        )
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"size {text} is negative")
        if text >= _UINT64_LIMIT:
            raise ValueError(f"size {text} is too large (Talos sizes are 64-bit)")
        return text
    if not text.strip():
        raise ValueError("size is empty; write it like '200GiB' or '100GB'")
    number, unit = _split_number(text)
    if not number:
        hint = " (sizes cannot be negative)" if text.lstrip().startswith("-") else ""
        raise ValueError(f"size {text!r} does not start with a number{hint}")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"size {text!r}: {number!r} is not a number") from None
    factor = _UNIT_TABLE.get(unit.strip().lower())
    if factor is None:
        raise ValueError(
            f"size {text!r}: unknown unit {unit.strip()!r} "
            "(use B, kB, MB, GB, TB, PB, EB or KiB, MiB, GiB, TiB, PiB, EiB)"
        )
    product = value * float(factor)
    if product >= _UINT64_LIMIT:
        raise ValueError(f"size {text!r} is too large (Talos sizes are 64-bit)")
    return int(product)


def _split_number(text: str) -> tuple[str, str]:
    """Split ``text`` like ParseBytes: the leading digits/dots/commas, then the rest.

    Commas are thousands separators to go-humanize and are dropped. Only ASCII
    digits count: Go's ``unicode.IsDigit`` accepts more, but ``strconv.ParseFloat``
    then rejects them, so the outcome (an error) is the same.
    """
    end = 0
    while end < len(text) and text[end] in _NUMBER_CHARS:
        end += 1
    return text[:end].replace(",", ""), text[end:]


def format_si(n: int) -> str:
    """Format ``n`` bytes like go-humanize ``Bytes`` (Talos's ``prettySize``): ``"200 GB"``."""
    return _humanate(n, 1000, _SI_UNITS)


def format_iec(n: int) -> str:
    """Format ``n`` bytes like go-humanize ``IBytes``: ``"100 GiB"``."""
    return _humanate(n, 1024, _IEC_UNITS)


def _humanate(n: int, base: int, units: tuple[str, ...]) -> str:
    """go-humanize ``humanateBytes``: same unit choice, rounding and precision."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"a byte count must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"byte count {n} is negative")
    if n < 10:
        return f"{n} B"
    exponent = math.floor(math.log(n) / math.log(base))
    exponent = min(exponent, len(units) - 1)
    value = math.floor(n / math.pow(base, exponent) * 10 + 0.5) / 10
    precision = 1 if value < 10 else 0
    return f"{value:.{precision}f} {units[exponent]}"
