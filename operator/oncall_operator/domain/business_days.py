"""Business hours as instants: when the next business day starts, in the policy's own time zone.

The handbook's severity guide answers ``info`` on the next business day: such a notice is
delivered when the next business window opens (Mon-Fri 08:00 in Europe/Berlin for the
handbook; a weekend or a holiday-free Friday evening waits for Monday), and the response is
due by that window's end. Wall-clock times in the zone, so a DST change moves the UTC instant,
never the local opening (an opening the clock skips is when it jumps past it,
as for handoffs: :func:`~oncall_operator.domain.schedules.local_instant`). Pure: the instant is an argument.
"""

import datetime as dt
import zoneinfo

from oncall_operator.api import base, policy
from oncall_operator.domain import schedules

DEFAULT_HOURS = policy.BusinessHours.model_validate({"timeZone": "UTC", "from": "09:00", "to": "17:00"})
WEEKDAYS = [d.value for d in base.Weekday]


def next_business_day(after: dt.datetime, hours: policy.BusinessHours | None) -> tuple[dt.datetime, dt.datetime]:
    """(opening, closing) of the first business window that opens after ``after``, in UTC."""
    hours = hours or DEFAULT_HOURS
    zone = zoneinfo.ZoneInfo(hours.time_zone)
    days = {d.value for d in hours.days}
    start, end = dt.time.fromisoformat(hours.from_), dt.time.fromisoformat(hours.to)
    day = after.astimezone(zone).date()
    for _ in range(15):  # at most two weeks ahead: days is never empty
        if WEEKDAYS[day.weekday()] in days:
            opening = schedules.local_instant(zone, day, start)
            if opening > after:
                closing = schedules.local_instant(zone, day + dt.timedelta(days=1) if end <= start else day, end)
                return opening, closing
        day += dt.timedelta(days=1)
    raise ValueError("business hours name no day")
