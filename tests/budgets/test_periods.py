"""`period_bounds`: calendar periods in the organization's time zone, clipped to the budget's life."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from budgets.choices import PeriodKind
from budgets.periods import period_bounds

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ORG_UTC = ZoneInfo("UTC")
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def bounds(kind, moment, tz=ORG_UTC, starts_at=LONG_AGO, ends_at=None):
    return period_bounds(kind, moment, tz, budget_starts_at=starts_at, budget_ends_at=ends_at)


def length(start: datetime, end: datetime) -> timedelta:
    """Elapsed time. (Subtracting two datetimes of the same ZoneInfo gives wall-clock time instead.)"""
    return end.astimezone(UTC) - start.astimezone(UTC)


@pytest.mark.parametrize(
    ("kind", "moment", "expected"),
    [
        (PeriodKind.DAILY, utc(2026, 3, 10, 15, 30), (utc(2026, 3, 10), utc(2026, 3, 11))),
        (PeriodKind.DAILY, utc(2026, 3, 10), (utc(2026, 3, 10), utc(2026, 3, 11))),
        (PeriodKind.DAILY, utc(2026, 12, 31, 23, 59), (utc(2026, 12, 31), utc(2027, 1, 1))),
        # 2026-03-12 is a Thursday: weeks run Monday to Monday.
        (PeriodKind.WEEKLY, utc(2026, 3, 12, 8), (utc(2026, 3, 9), utc(2026, 3, 16))),
        (PeriodKind.WEEKLY, utc(2026, 3, 9), (utc(2026, 3, 9), utc(2026, 3, 16))),
        (PeriodKind.WEEKLY, utc(2026, 3, 15, 23, 59), (utc(2026, 3, 9), utc(2026, 3, 16))),
        (PeriodKind.WEEKLY, utc(2026, 1, 1), (utc(2025, 12, 29), utc(2026, 1, 5))),
        (PeriodKind.MONTHLY, utc(2026, 2, 15), (utc(2026, 2, 1), utc(2026, 3, 1))),
        (PeriodKind.MONTHLY, utc(2028, 2, 29, 12), (utc(2028, 2, 1), utc(2028, 3, 1))),
        (PeriodKind.MONTHLY, utc(2026, 12, 31, 23), (utc(2026, 12, 1), utc(2027, 1, 1))),
        (PeriodKind.QUARTERLY, utc(2026, 2, 15), (utc(2026, 1, 1), utc(2026, 4, 1))),
        (PeriodKind.QUARTERLY, utc(2026, 4, 1), (utc(2026, 4, 1), utc(2026, 7, 1))),
        (PeriodKind.QUARTERLY, utc(2026, 9, 30, 23), (utc(2026, 7, 1), utc(2026, 10, 1))),
        (PeriodKind.QUARTERLY, utc(2026, 11, 5), (utc(2026, 10, 1), utc(2027, 1, 1))),
        (PeriodKind.YEARLY, utc(2026, 7, 4), (utc(2026, 1, 1), utc(2027, 1, 1))),
        (PeriodKind.YEARLY, utc(2026, 12, 31, 23, 59), (utc(2026, 1, 1), utc(2027, 1, 1))),
    ],
)
def test_calendar_periods_in_utc(kind, moment, expected):
    assert bounds(kind, moment) == expected


def test_a_period_is_half_open():
    _, end = bounds(PeriodKind.MONTHLY, utc(2026, 3, 31, 23, 59, 59, 999999))
    assert end == utc(2026, 4, 1)
    assert bounds(PeriodKind.MONTHLY, end) == (utc(2026, 4, 1), utc(2026, 5, 1))


def test_custom_period_is_the_budgets_own_span():
    starts, ends = utc(2026, 3, 2, 9), utc(2026, 3, 20, 17)

    assert bounds(PeriodKind.CUSTOM, utc(2026, 3, 10), starts_at=starts, ends_at=ends) == (starts, ends)
    assert bounds(PeriodKind.CUSTOM, starts, starts_at=starts, ends_at=ends) == (starts, ends)
    assert bounds(PeriodKind.CUSTOM, ends, starts_at=starts, ends_at=ends) is None
    assert (
        bounds(PeriodKind.CUSTOM, starts - timedelta(microseconds=1), starts_at=starts, ends_at=ends) is None
    )


def test_custom_period_without_an_end_is_refused():
    with pytest.raises(ValueError, match="end"):
        bounds(PeriodKind.CUSTOM, utc(2026, 3, 10), starts_at=utc(2026, 3, 1))


def test_boundaries_are_local_midnights_of_the_organization():
    # 2026-03-01 03:00 UTC is still February 28, 22:00 in New York.
    start, end = bounds(PeriodKind.MONTHLY, utc(2026, 3, 1, 3), tz=NEW_YORK)
    assert (start, end) == (utc(2026, 2, 1, 5), utc(2026, 3, 1, 5))
    assert start.astimezone(NEW_YORK).hour == 0
    # March starts at EST midnight and ends at EDT midnight (DST began on 2026-03-08).
    assert bounds(PeriodKind.MONTHLY, utc(2026, 3, 1, 5), tz=NEW_YORK) == (
        utc(2026, 3, 1, 5),
        utc(2026, 4, 1, 4),
    )


def test_a_week_starts_on_monday_in_local_time():
    # Sunday 2026-03-15 23:30 UTC is already Monday 00:30 in Berlin.
    assert bounds(PeriodKind.WEEKLY, utc(2026, 3, 15, 23, 30), tz=BERLIN) == (
        utc(2026, 3, 15, 23),
        utc(2026, 3, 22, 23),
    )


def test_the_day_clocks_go_forward_in_berlin_has_23_hours():
    # 2026-03-29: 02:00 CET -> 03:00 CEST.
    start, end = bounds(PeriodKind.DAILY, utc(2026, 3, 29, 12), tz=BERLIN)
    assert (start, end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert length(start, end) == timedelta(hours=23)


def test_the_day_clocks_go_back_in_berlin_has_25_hours():
    # 2026-10-25: 03:00 CEST -> 02:00 CET.
    start, end = bounds(PeriodKind.DAILY, utc(2026, 10, 25, 1, 30), tz=BERLIN)
    assert (start, end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert length(start, end) == timedelta(hours=25)


def test_months_across_a_dst_change_in_berlin():
    march = bounds(PeriodKind.MONTHLY, utc(2026, 3, 15), tz=BERLIN)
    april = bounds(PeriodKind.MONTHLY, march[1], tz=BERLIN)

    assert march == (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    assert length(*march) == timedelta(days=31, hours=-1)
    assert april == (utc(2026, 3, 31, 22), utc(2026, 4, 30, 22))
    # 2026-10-31 23:30 UTC is November 1 in Berlin: Q4 runs from CEST midnight to CET midnight.
    assert bounds(PeriodKind.QUARTERLY, utc(2026, 10, 31, 23, 30), tz=BERLIN) == (
        utc(2026, 9, 30, 22),
        utc(2026, 12, 31, 23),
    )


def test_a_budget_starting_mid_period_has_a_short_first_period():
    starts_at = utc(2026, 3, 10, 12)

    assert bounds(PeriodKind.MONTHLY, utc(2026, 3, 20), starts_at=starts_at) == (starts_at, utc(2026, 4, 1))
    assert bounds(PeriodKind.MONTHLY, utc(2026, 4, 20), starts_at=starts_at) == (
        utc(2026, 4, 1),
        utc(2026, 5, 1),
    )
    assert bounds(PeriodKind.WEEKLY, utc(2026, 3, 12), starts_at=starts_at) == (starts_at, utc(2026, 3, 16))


def test_no_period_before_the_budget_starts():
    starts_at = utc(2026, 3, 10, 12)

    assert bounds(PeriodKind.MONTHLY, utc(2026, 3, 10, 11, 59), starts_at=starts_at) is None
    assert bounds(PeriodKind.MONTHLY, utc(2026, 2, 1), starts_at=starts_at) is None
    assert bounds(PeriodKind.MONTHLY, starts_at, starts_at=starts_at) == (starts_at, utc(2026, 4, 1))


def test_the_last_period_ends_with_the_budget():
    ends_at = utc(2026, 4, 15, 6)

    assert bounds(PeriodKind.MONTHLY, utc(2026, 4, 10), ends_at=ends_at) == (utc(2026, 4, 1), ends_at)
    assert bounds(PeriodKind.MONTHLY, utc(2026, 3, 10), ends_at=ends_at) == (utc(2026, 3, 1), utc(2026, 4, 1))
    assert bounds(PeriodKind.MONTHLY, ends_at, ends_at=ends_at) is None
    assert bounds(PeriodKind.MONTHLY, utc(2026, 5, 1), ends_at=ends_at) is None


def test_a_budget_inside_one_period_gets_one_clipped_period():
    starts_at, ends_at = utc(2026, 3, 10), utc(2026, 3, 20)

    assert bounds(PeriodKind.QUARTERLY, utc(2026, 3, 15), starts_at=starts_at, ends_at=ends_at) == (
        starts_at,
        ends_at,
    )


@pytest.mark.parametrize("kind", [k for k in PeriodKind.values if k != PeriodKind.CUSTOM])
@pytest.mark.parametrize(
    "tz", [ORG_UTC, BERLIN, NEW_YORK, ZoneInfo("Asia/Kolkata"), ZoneInfo("Pacific/Chatham")]
)
def test_consecutive_periods_tile_time_without_gaps(kind, tz):
    moment = utc(2025, 12, 20, 7, 45)
    start, end = bounds(kind, moment, tz=tz)
    for _ in range(30):
        assert start <= moment < end
        next_start, next_end = bounds(kind, end, tz=tz)
        assert next_start == end
        moment, start, end = end, next_start, next_end
