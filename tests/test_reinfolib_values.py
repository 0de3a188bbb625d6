"""The parsers of the API's ``u_`` display strings (geoservice.reinfolib.values)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoservice.reinfolib.values import (
    PARSERS,
    parse_area_m2,
    parse_number,
    parse_percent,
    parse_yen,
)


@pytest.mark.parametrize(("text", "value"), [
    ("200%", 200.0), ("60％", 60.0), ("80", 80.0), ("", None), ("-", None), (None, None),
    ("　－　", None),
])
def test_percent(text: str | None, value: float | None) -> None:
    assert parse_percent(text) == value


@pytest.mark.parametrize(("text", "value"), [
    ("3,300万円", 33_000_000.0),
    ("1億2,000万円", 120_000_000.0),
    ("2億円", 200_000_000.0),
    ("1,200,000(円/㎡)", 1_200_000.0),
    ("1,200,000（円／㎡）", 1_200_000.0),
    ("45万円", 450_000.0),
    ("980,000円/㎡", 980_000.0),
    ("非公開", None),
])
def test_yen(text: str, value: float | None) -> None:
    assert parse_yen(text) == value


@pytest.mark.parametrize(("text", "value"), [
    ("110㎡", 110.0), ("2,000㎡以上", 2000.0), ("45.5m²", 45.5), ("75", 75.0), ("-", None),
])
def test_area(text: str, value: float | None) -> None:
    assert parse_area_m2(text) == value


@pytest.mark.parametrize(("text", "value"), [
    ("1,200,000(円/㎡)", 1_200_000.0), ("▲1.5", -1.5), ("3.2", 3.2), ("-2.0", -2.0),
    ("15分", 15.0),
])
def test_number(text: str, value: float) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(("parser", "text"), [
    ("percent", "二百%"), ("percent", "200%以上"), ("yen", "約3,300万円"), ("yen", "3,300万ドル"),
    ("area-m2", "110坪"), ("number", "abc"),
])
def test_unreadable_text_is_an_error_not_a_guess(parser: str, text: str) -> None:
    with pytest.raises(ValueError, match="not|does not"):
        PARSERS[parser](text)


@given(st.integers(min_value=0, max_value=10**12))
def test_yen_round_trips_the_display_form(amount: int) -> None:
    """Any amount written the way the API writes it ("1億2,345万円") reads back exactly."""
    oku, rest = divmod(amount // 10_000 * 10_000, 100_000_000)
    man = rest // 10_000
    text = (f"{oku:,}億" if oku else "") + (f"{man:,}万" if man or not oku else "") + "円"
    assert parse_yen(text) == float(oku * 100_000_000 + man * 10_000)


@given(st.decimals(min_value=0, max_value=10**7, places=1))
def test_percent_and_number_agree(value: object) -> None:
    text = f"{value}%"
    assert parse_percent(text) == parse_number(text) == float(str(value))
