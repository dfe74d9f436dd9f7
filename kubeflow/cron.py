"""Cron expressions: users write crontab's 5 fields; KFP wants 6, APScheduler its own trigger."""

from __future__ import annotations

from apscheduler.triggers.cron import CronTrigger

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


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


def to_trigger(expr: str) -> CronTrigger:
    """An APScheduler trigger firing exactly when cron would."""
    second, minute, hour, day, month, weekday = (f.lower() for f in six_fields(expr))
    return CronTrigger(second=second, minute=minute, hour=hour, day=_any(day), month=month,
                       day_of_week=_weekdays(weekday))


def _any(field: str) -> str:
    # KFP's cron accepts '?' (no specific value) in the day fields; APScheduler doesn't.
    return "*" if field == "?" else field


def _day(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token[:3] in WEEKDAYS and len(token) == 3:
        return WEEKDAYS.index(token)
    raise ValueError(f"cron weekday {token!r}: expected 0-7 or sun..sat")


def _weekdays(field: str) -> str:
    """Weekdays by name: cron counts from Sunday = 0 (or 7), APScheduler 3 from Monday = 0."""
    if _any(field) == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        span, _, step = item.partition("/")
        if span in ("*", "?"):
            first, last = 0, 6
        elif "-" in span:
            first, last = (_day(token) for token in span.split("-", 1))
        else:
            first = _day(span)
            last = 6 if step else first  # cron's "1/2" means 1-6/2
        if first > last or (step and (not step.isdigit() or int(step) == 0)):
            raise ValueError(f"cron weekday field {field!r}: bad range or step in {item!r}")
        days.update(day % 7 for day in range(first, last + 1, int(step or 1)))
    return ",".join(WEEKDAYS[day] for day in sorted(days))
