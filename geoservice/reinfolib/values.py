"""Parsers for the API's ``u_`` display strings ("200%", "3,300万円", "1,200,000(円/㎡)").

The 不動産情報ライブラリ API sends many values as display strings with units.  A layer
keeps the raw string in one property and the number in another; which parser reads the
number is named per property in the layer spec (``source.options.parse``), because the
unit decides the arithmetic: "3,300万円" is 33,000,000 yen, not 3,300.

Every parser returns ``None`` for the API's "no value" forms ("", "-", "－", "非公開") and
raises ``ValueError`` for text it cannot read, so bad data is reported, not guessed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

#: Display strings that mean "no value".
BLANKS = frozenset(
    unicodedata.normalize("NFKC", b)
    for b in ("", "-", "－", "―", "ー", "—", "非公開", "不明", "なし")
)
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_YEN_PART = re.compile(r"(\d+(?:\.\d+)?)(兆|億|万)?")
_YEN_UNITS = {"兆": 1_000_000_000_000, "億": 100_000_000, "万": 10_000, None: 1}


def _clean(text: str | float | int | None) -> str | None:
    """NFKC-normalised text without thousands separators, or ``None`` for a blank."""
    if text is None:
        return None
    s = unicodedata.normalize("NFKC", str(text)).strip()
    if s in BLANKS:
        return None
    return s.replace(",", "").replace(" ", "")


def parse_number(text: str | float | int | None) -> float | None:
    """The number a display string leads with ("200%" → 200.0, "12.5㎡" → 12.5).

    Examples
    --------
    >>> parse_number("1,200,000(円/㎡)"), parse_number("-"), parse_number("▲1.5")
    (1200000.0, None, -1.5)
    """
    s = _clean(text)
    if s is None:
        return None
    s = s.replace("▲", "-").replace("△", "-")  # Japanese minus signs in change rates
    match = _NUMBER.match(s)
    if match is None:
        raise ValueError(f"{text!r} does not start with a number")
    return float(match.group())


def parse_percent(text: str | float | int | None) -> float | None:
    """A percentage as its number of percent ("200%" → 200.0, "60％" → 60.0).

    Examples
    --------
    >>> parse_percent("200%"), parse_percent("60％"), parse_percent("")
    (200.0, 60.0, None)
    """
    s = _clean(text)
    if s is None:
        return None
    if not re.fullmatch(r"[+-]?\d+(?:\.\d+)?%?", s):
        raise ValueError(f"{text!r} is not a percentage like '200%'")
    return float(s.rstrip("%"))


def parse_yen(text: str | float | int | None) -> float | None:
    """An amount of money in yen, reading 万/億/兆 ("3,300万円" → 33,000,000.0).

    A trailing unit in brackets, as in "1,200,000(円/㎡)", is ignored (the layer's property
    says what the amount is per).

    Examples
    --------
    >>> parse_yen("3,300万円"), parse_yen("1億2,000万円"), parse_yen("1,200,000(円/㎡)")
    (33000000.0, 120000000.0, 1200000.0)
    """
    s = _clean(text)
    if s is None:
        return None
    head = re.split(r"[(（]", s, maxsplit=1)[0]
    head = head.removesuffix("/m2").removesuffix("円")  # NFKC made "㎡" "m2"
    total, pos = 0.0, 0
    for match in _YEN_PART.finditer(head):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _YEN_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or head[pos:] not in ("", "円"):
        raise ValueError(f"{text!r} is not an amount like '3,300万円' or '1,200,000(円/㎡)'")
    return total


def parse_area_m2(text: str | float | int | None) -> float | None:
    """An area in m²; "2,000㎡以上" (the API's open-ended class) gives its lower bound 2000.0.

    Examples
    --------
    >>> parse_area_m2("110㎡"), parse_area_m2("2,000㎡以上"), parse_area_m2("45.5m²")
    (110.0, 2000.0, 45.5)
    """
    s = _clean(text)
    if s is None:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(?:m2)?(?:以上|未満)?", s)  # NFKC: ㎡, m² → m2
    if match is None:
        raise ValueError(f"{text!r} is not an area like '110㎡'")
    return float(match.group(1))


Parser = Callable[[str | float | int | None], float | None]

#: Parser names usable in a layer spec's ``source.options.parse``.
PARSERS: dict[str, Parser] = {
    "number": parse_number,
    "percent": parse_percent,
    "yen": parse_yen,
    "area-m2": parse_area_m2,
}
