"""Cron expressions: users write crontab's 5 fields; KFP wants 6 (seconds first), and
`schedule --local` fires on them exactly as cron and KFP do.

The day fields follow cron's rule: when both day of month and day of week are restricted, a
day matching *either* fires (`0 3 1 * mon`: every 1st and every Monday), as in Vixie cron and
in KFP's robfig/cron. APScheduler's own CronTrigger ANDs them, so the local schedule fires
through croniter, which keeps the OR rule, behind APScheduler's trigger interface.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from croniter import CroniterBadDateError, croniter

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# robfig/cron's field grammar (KFP's scheduler): `*` or `?`, a number or a 3-letter name,
# optionally a range and a step; lists of those. croniter also takes L, W, # and H, which KFP
# refuses.
_ITEM = re.compile(r"^(\*|\?|\d+|[a-z]{3})(-(\d+|[a-z]{3}))?(/\d+)?$")
YEARS_TO_FIRE = 8  # a leap day fires at most 8 years apart (2096 to 2104)


def six_fields(expr: str) -> list[str]:
    """Seconds, minutes, hours, day of month, month, day of week; 5 fields run at second 0."""
    fields = expr.split()
    if len(fields) == 5:
        return ["0", *fields]
    if len(fields) == 6:
        return fields
    raise ValueError(f"cron {expr!r}: expected 5 fields (minute hour day month weekday) "
                     f"or 6 (seconds first), got {len(fields)}")


def to_kfp_cron(expr: str) -> str:
    """KFP's recurring runs take 6 fields, seconds first (Go's robfig/cron)."""
    to_trigger(expr)  # rejects a typo here rather than on the server
    return " ".join(six_fields(expr))


class CronTrigger(BaseTrigger):
    """An APScheduler trigger firing exactly when cron would (6 fields, seconds first)."""

    def __init__(self, fields: list[str]):
        self.expression = " ".join(fields)
        croniter(self.expression, second_at_beginning=True)  # raises on a bad field

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime:
        # The first tick at or after now; after a tick, the next one strictly later.
        start = previous_fire_time if previous_fire_time is not None else \
            now - timedelta(microseconds=1)
        return croniter(self.expression, start, second_at_beginning=True).get_next(datetime)

    def __str__(self) -> str:
        return f"cron[{self.expression}]"


def to_trigger(expr: str) -> CronTrigger:
    """The local schedule's trigger; a bad expression, or one that never fires, raises
    ValueError naming it."""
    fields = [field.lower() for field in six_fields(expr)]
    try:
        _check_items(fields)
        _check_weekdays(fields[5])
        trigger = CronTrigger(fields)
        croniter(trigger.expression, datetime.now(), second_at_beginning=True,
                 max_years_between_matches=YEARS_TO_FIRE).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron {expr!r}: never fires (no date matches within "
                         f"{YEARS_TO_FIRE} years, e.g. 31 February)") from None
    except (ValueError, KeyError) as error:  # croniter's errors are ValueErrors
        raise ValueError(f"cron {expr!r}: {error}") from None
    return trigger


def _check_items(fields: list[str]) -> None:
    for field in fields:
        bad = [item for item in field.split(",") if not _ITEM.match(item)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a cron field item KFP takes (*, ?, N, N-M, "
                             "*/S, N-M/S, names; no L, W, # or H)")


def _day(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token[:3] in WEEKDAYS and len(token) == 3:
        return WEEKDAYS.index(token)
    raise ValueError(f"cron weekday {token!r}: expected 0-7 or sun..sat")


def _check_weekdays(field: str) -> None:
    """robfig/cron's weekday rules, stricter than croniter's: no wrapping ranges (fri-mon)."""
    for item in field.split(","):
        span, _, step = item.partition("/")
        if span in ("*", "?"):
            continue
        first, last = (_day(token) for token in span.split("-", 1)) if "-" in span \
            else (_day(span), _day(span))
        if first > last or (step and (not step.isdigit() or int(step) == 0)):
            raise ValueError(f"cron weekday field {field!r}: bad range or step in {item!r}")
