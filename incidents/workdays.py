"""England working days for report deadlines (C16).

Working days are Monday to Friday minus the bank holidays of England:
`holidays.country_holidays("GB", subdiv="ENG")`. Without `subdiv` the library gives only
the UK-wide days, so Easter Monday and the late summer bank holiday (England, not
Scotland) would count as working days and deadlines would come a day early.

When the clock starts: a request made on a working day before 17:00 UK time counts
from that day (day 0), so "5 working days" ends on the fifth working day after it. A
request made after 17:00, or on a weekend or bank holiday, counts from the next working
day, as if it had arrived first thing that morning. UK time is Europe/London (GMT/BST);
everything stored stays UTC.
"""

from __future__ import annotations

from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

UK = ZoneInfo("Europe/London")
CUT_OFF = time(17, 0)
TARGET_WORKING_DAYS = 5
LIMIT_WORKING_DAYS = 7


@lru_cache(maxsize=1)
def england_holidays() -> holidays.HolidayBase:
    # Years are filled in lazily by the library as dates are looked up.
    return holidays.country_holidays("GB", subdiv="ENG")


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in england_holidays()


def add_working_days(day: date, n: int) -> date:
    """The n-th working day after `day` (n >= 0; n == 0 gives `day` if it is one, else the next)."""
    if n < 0:
        raise ValueError("n must not be negative")
    current = day
    if n == 0:
        while not is_working_day(current):
            current = date.fromordinal(current.toordinal() + 1)
        return current
    while n:
        current = date.fromordinal(current.toordinal() + 1)
        if is_working_day(current):
            n -= 1
    return current


def previous_working_day(day: date) -> date:
    current = date.fromordinal(day.toordinal() - 1)
    while not is_working_day(current):
        current = date.fromordinal(current.toordinal() - 1)
    return current


def uk_date(moment: datetime) -> date:
    return moment.astimezone(UK).date()


def clock_start(requested_at: datetime) -> date:
    """Day 0 of a request: its UK date if a working day before 17:00, else the next working day."""
    local = requested_at.astimezone(UK)
    day = local.date()
    if is_working_day(day) and local.time() < CUT_OFF:
        return day
    return add_working_days(day, 1)


def report_due_dates(requested_at: datetime) -> tuple[date, date]:
    """(target, limit): 5 and 7 England working days after the request's day 0."""
    start = clock_start(requested_at)
    return add_working_days(start, TARGET_WORKING_DAYS), add_working_days(start, LIMIT_WORKING_DAYS)
