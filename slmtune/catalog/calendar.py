"""Calendar tools: events, free/busy search, invitations, out-of-office, business days and time zones."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from slmtune.catalog.common import int_in_range, one_of, parse_date, seeded_rng

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
EVENT_RE = re.compile(r"EVT-\d{4,6}")

# IANA zone -> (standard UTC offset in minutes, daylight-saving rule, standard abbreviation, daylight abbreviation)
ZONES: dict[str, tuple[int, str, str, str]] = {
    "America/New_York": (-300, "us", "EST", "EDT"),
    "America/Chicago": (-360, "us", "CST", "CDT"),
    "America/Denver": (-420, "us", "MST", "MDT"),
    "America/Phoenix": (-420, "none", "MST", "MST"),
    "America/Los_Angeles": (-480, "us", "PST", "PDT"),
    "America/Sao_Paulo": (-180, "none", "BRT", "BRT"),
    "Europe/London": (0, "eu", "GMT", "BST"),
    "Europe/Paris": (60, "eu", "CET", "CEST"),
    "Europe/Berlin": (60, "eu", "CET", "CEST"),
    "Asia/Dubai": (240, "none", "GST", "GST"),
    "Asia/Kolkata": (330, "none", "IST", "IST"),
    "Asia/Singapore": (480, "none", "SGT", "SGT"),
    "Asia/Tokyo": (540, "none", "JST", "JST"),
    "Australia/Sydney": (600, "au", "AEST", "AEDT"),
}


def _datetime(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an RFC 3339 date-time such as 2025-05-14T15:00:00-04:00, "
                         f"got {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name} must include a UTC offset, got {value!r}")
    return parsed


def _emails(values: list[str] | None, name: str) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise ValueError(f"{name} must be a list of email addresses")
    for v in values:
        if not isinstance(v, str) or not EMAIL_RE.fullmatch(v):
            raise ValueError(f"{name}: {v!r} is not a valid email address")
    return values


def _event_id(value: str) -> str:
    if not isinstance(value, str) or not EVENT_RE.fullmatch(value):
        raise ValueError(f"event_id must look like EVT-7731, got {value!r}")
    return value


def create_event(
    title: str,
    start: str,
    duration_minutes: int = 60,
    attendees: list[str] | None = None,
    location: str = "",
    video_call: bool = False,
    reminder_minutes: int = 10,
) -> dict[str, Any]:
    """Create a calendar event and return it with a deterministic event ID."""
    if not isinstance(title, str) or not title.strip():
        raise ValueError("title must be a non-empty string")
    begin = _datetime(start, "start")
    int_in_range(duration_minutes, 5, 1440, "duration_minutes")
    guests = _emails(attendees, "attendees")
    int_in_range(reminder_minutes, 0, 10080, "reminder_minutes")
    digest = hashlib.sha256(json.dumps([title, start, duration_minutes, guests]).encode()).hexdigest()
    event_id = f"EVT-{int(digest[:8], 16) % 900000 + 100000}"
    return {
        "event_id": event_id, "title": title.strip(), "start": begin.isoformat(),
        "end": (begin + dt.timedelta(minutes=duration_minutes)).isoformat(), "attendees": guests,
        "location": location,
        "video_link": f"https://meet.example.com/{digest[8:11]}-{digest[11:15]}-{digest[15:18]}"
        if video_call else None,
        "reminder_minutes_before": reminder_minutes, "invitations_sent": len(guests),
    }


def events_in_range(
    start_date: str, end_date: str, calendar_id: str = "primary", include_declined: bool = False
) -> dict[str, Any]:
    """List deterministic sample events between two dates (inclusive)."""
    first, last = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
    if last < first:
        raise ValueError("end_date must not be before start_date")
    if (last - first).days > 62:
        raise ValueError("the range may span at most 62 days")
    if not isinstance(calendar_id, str) or not calendar_id.strip():
        raise ValueError("calendar_id must be a non-empty string")
    titles = ["1:1 with manager", "Sprint planning", "Dentist", "Design review", "Team lunch", "Quarterly business "
              "review", "Customer call: Globex", "Yoga class", "Interview: backend engineer", "Board prep"]
    events = []
    day = first
    while day <= last:
        rng = seeded_rng("events", calendar_id, day.isoformat())
        if day.weekday() < 5:
            for _ in range(rng.randint(0, 3)):
                start = dt.datetime.combine(day, dt.time(rng.randint(8, 17), rng.choice((0, 30))))
                status = rng.choices(["accepted", "tentative", "declined"], weights=(7, 2, 1))[0]
                if status == "declined" and not include_declined:
                    continue
                events.append({"event_id": f"EVT-{rng.randint(100000, 999999)}", "title": rng.choice(titles),
                               "start_local": start.isoformat(timespec="minutes"),
                               "duration_minutes": rng.choice((15, 30, 45, 60, 90)), "response": status})
        day += dt.timedelta(days=1)
    events.sort(key=lambda e: e["start_local"])
    return {"calendar_id": calendar_id, "start_date": first.isoformat(), "end_date": last.isoformat(),
            "count": len(events), "events": events}


def find_free_slots(
    attendees: list[str],
    date: str,
    duration_minutes: int,
    working_hours: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Find common free slots for attendees on a date from deterministic sample busy times."""
    people = _emails(attendees, "attendees")
    if not people:
        raise ValueError("attendees must contain at least one email address")
    day = parse_date(date, "date")
    int_in_range(duration_minutes, 15, 480, "duration_minutes")
    hours = working_hours if isinstance(working_hours, dict) else {"start_hour": 9, "end_hour": 17}
    start_h = int_in_range(hours.get("start_hour"), 0, 23, "working_hours.start_hour")
    end_h = int_in_range(hours.get("end_hour"), 1, 24, "working_hours.end_hour")
    if end_h <= start_h:
        raise ValueError("working_hours.end_hour must be after start_hour")
    busy: list[tuple[int, int]] = []
    for person in people:
        rng = seeded_rng("busy", person.lower(), day.isoformat())
        for _ in range(rng.randint(1, 4)):
            begin = rng.randrange(7 * 60, 19 * 60, 30)
            busy.append((begin, begin + rng.choice((30, 30, 60, 60, 90, 120))))
    busy.sort()
    merged: list[list[int]] = []
    for b, e in busy:
        if merged and b <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([b, e])
    slots, cursor, day_end = [], start_h * 60, end_h * 60
    for b, e in [*merged, [day_end, day_end]]:
        b, e = max(b, start_h * 60), min(e, day_end)
        while cursor + duration_minutes <= min(b, day_end):
            slots.append({"start": f"{cursor // 60:02d}:{cursor % 60:02d}",
                          "end": f"{(cursor + duration_minutes) // 60:02d}:{(cursor + duration_minutes) % 60:02d}"})
            cursor += 30
        cursor = max(cursor, e)
    return {"date": day.isoformat(), "attendees": people, "duration_minutes": duration_minutes,
            "working_hours": {"start_hour": start_h, "end_hour": end_h},
            "busy_blocks": [{"start": f"{b // 60:02d}:{b % 60:02d}", "end": f"{e // 60:02d}:{e % 60:02d}"}
                            for b, e in merged],
            "free_slots": slots}


def cancel_event(event_id: str, notify_attendees: bool = True, message: str = "") -> dict[str, Any]:
    """Cancel an event and report who is notified."""
    _event_id(event_id)
    if len(message) > 500:
        raise ValueError("message must be at most 500 characters")
    notified = seeded_rng("attendees", event_id).randint(1, 9) if notify_attendees else 0
    return {"event_id": event_id, "status": "cancelled", "attendees_notified": notified,
            "message": message if notify_attendees else ""}


def set_out_of_office(
    start_date: str,
    end_date: str,
    auto_reply_message: str,
    decline_new_meetings: bool = True,
    backup_contact: str = "",
) -> dict[str, Any]:
    """Turn on an out-of-office period with an automatic reply."""
    first, last = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
    if last < first:
        raise ValueError("end_date must not be before start_date")
    if not isinstance(auto_reply_message, str) or not auto_reply_message.strip():
        raise ValueError("auto_reply_message must be a non-empty string")
    if backup_contact and not EMAIL_RE.fullmatch(backup_contact):
        raise ValueError(f"backup_contact must be an email address, got {backup_contact!r}")
    weekdays = sum(1 for i in range((last - first).days + 1) if (first + dt.timedelta(days=i)).weekday() < 5)
    reply = auto_reply_message.strip()
    if backup_contact:
        reply += f" For urgent matters please contact {backup_contact}."
    return {"status": "scheduled", "start_date": first.isoformat(), "end_date": last.isoformat(),
            "weekdays_away": weekdays, "auto_reply": reply, "decline_new_meetings": decline_new_meetings}


def respond_to_invite(
    event_id: str, response: str, comment: str = "", notify_organizer: bool = True
) -> dict[str, Any]:
    """Record a response to a meeting invitation."""
    _event_id(event_id)
    one_of(response, ("accepted", "declined", "tentative"), "response")
    return {"event_id": event_id, "response": response, "comment": comment,
            "organizer_notified": notify_organizer,
            "organizer": seeded_rng("organizer", event_id).choice(
                ["lena.fischer@example.com", "omar.haddad@example.com", "kim.tanaka@example.com"])}


# ---- public holidays and business days ------------------------------------------------------------------------


def _easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ll = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ll) // 451
    month = (h + ll - 7 * m + 114) // 31
    day = (h + ll - 7 * m + 114) % 31 + 1
    return dt.date(year, month, day)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """n-th (1-based; -1 = last) given weekday (Mon=0) of a month."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _holidays(country: str, year: int) -> dict[dt.date, str]:
    easter = _easter(year)
    out: dict[dt.date, str] = {}
    if country == "US":
        fixed = {(1, 1): "New Year's Day", (6, 19): "Juneteenth", (7, 4): "Independence Day",
                 (11, 11): "Veterans Day", (12, 25): "Christmas Day"}
        for (m, d), name in fixed.items():
            day = dt.date(year, m, d)
            shift = {5: -1, 6: 1}.get(day.weekday(), 0)
            out[day + dt.timedelta(days=shift)] = name + (" (observed)" if shift else "")
        out[_nth_weekday(year, 1, 0, 3)] = "Martin Luther King Jr. Day"
        out[_nth_weekday(year, 2, 0, 3)] = "Washington's Birthday"
        out[_nth_weekday(year, 5, 0, -1)] = "Memorial Day"
        out[_nth_weekday(year, 9, 0, 1)] = "Labor Day"
        out[_nth_weekday(year, 10, 0, 2)] = "Columbus Day"
        out[_nth_weekday(year, 11, 3, 4)] = "Thanksgiving Day"
    elif country == "GB":
        taken: set[dt.date] = set()
        for m, d, name in ((1, 1, "New Year's Day"), (12, 25, "Christmas Day"), (12, 26, "Boxing Day")):
            day = dt.date(year, m, d)
            while day.weekday() >= 5 or day in taken:
                day += dt.timedelta(days=1)
            taken.add(day)
            out[day] = name
        out[easter - dt.timedelta(days=2)] = "Good Friday"
        out[easter + dt.timedelta(days=1)] = "Easter Monday"
        out[_nth_weekday(year, 5, 0, 1)] = "Early May bank holiday"
        out[_nth_weekday(year, 5, 0, -1)] = "Spring bank holiday"
        out[_nth_weekday(year, 8, 0, -1)] = "Summer bank holiday"
    elif country == "DE":
        for m, d, name in ((1, 1, "Neujahr"), (5, 1, "Tag der Arbeit"), (10, 3, "Tag der Deutschen Einheit"),
                           (12, 25, "1. Weihnachtstag"), (12, 26, "2. Weihnachtstag")):
            out[dt.date(year, m, d)] = name
        for offset, name in ((-2, "Karfreitag"), (1, "Ostermontag"), (39, "Christi Himmelfahrt"),
                             (50, "Pfingstmontag")):
            out[easter + dt.timedelta(days=offset)] = name
    elif country == "FR":
        for m, d, name in ((1, 1, "Jour de l'an"), (5, 1, "Fête du Travail"), (5, 8, "Victoire 1945"),
                           (7, 14, "Fête nationale"), (8, 15, "Assomption"), (11, 1, "Toussaint"),
                           (11, 11, "Armistice 1918"), (12, 25, "Noël")):
            out[dt.date(year, m, d)] = name
        for offset, name in ((1, "Lundi de Pâques"), (39, "Ascension"), (50, "Lundi de Pentecôte")):
            out[easter + dt.timedelta(days=offset)] = name
    return out


def count_business_days(
    start_date: str, end_date: str, country: str = "US", include_end_date: bool = True
) -> dict[str, Any]:
    """Count working days between two dates, skipping weekends and national public holidays."""
    first, last = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
    one_of(country, ("US", "GB", "DE", "FR", "none"), "country")
    if last < first:
        raise ValueError("end_date must not be before start_date")
    if (last - first).days > 3660:
        raise ValueError("the range may span at most ten years")
    holidays: dict[dt.date, str] = {}
    if country != "none":
        for year in range(first.year, last.year + 1):
            holidays.update(_holidays(country, year))
    stop = last if include_end_date else last - dt.timedelta(days=1)
    business, weekend, skipped = 0, 0, []
    day = first
    while day <= stop:
        if day.weekday() >= 5:
            weekend += 1
        elif day in holidays:
            skipped.append({"date": day.isoformat(), "name": holidays[day]})
        else:
            business += 1
        day += dt.timedelta(days=1)
    return {"start_date": first.isoformat(), "end_date": last.isoformat(), "country": country,
            "business_days": business, "weekend_days": weekend, "holidays": skipped}


# ---- time zones ------------------------------------------------------------------------------------------------


def _utc_offset(zone: str, instant: dt.datetime) -> tuple[int, bool]:
    """UTC offset in minutes and DST flag of a zone at a UTC instant."""
    std, rule, _, _ = ZONES[zone]
    utc = instant.astimezone(dt.timezone.utc).replace(tzinfo=None)
    year = utc.year
    if rule == "us":
        begin = dt.datetime.combine(_nth_weekday(year, 3, 6, 2), dt.time(2)) - dt.timedelta(minutes=std)
        end = dt.datetime.combine(_nth_weekday(year, 11, 6, 1), dt.time(2)) - dt.timedelta(minutes=std + 60)
        dst = begin <= utc < end
    elif rule == "eu":
        begin = dt.datetime.combine(_nth_weekday(year, 3, 6, -1), dt.time(1))
        end = dt.datetime.combine(_nth_weekday(year, 10, 6, -1), dt.time(1))
        dst = begin <= utc < end
    elif rule == "au":
        end = dt.datetime.combine(_nth_weekday(year, 4, 6, 1), dt.time(3)) - dt.timedelta(minutes=std + 60)
        begin = dt.datetime.combine(_nth_weekday(year, 10, 6, 1), dt.time(2)) - dt.timedelta(minutes=std)
        dst = utc < end or utc >= begin
    else:
        dst = False
    return std + (60 if dst else 0), dst


def convert_meeting_time(
    datetime: str, target_timezones: list[str], working_hours_only: bool = False
) -> dict[str, Any]:
    """Convert a meeting time to several IANA time zones, applying their daylight-saving rules."""
    instant = _datetime(datetime, "datetime")
    if not isinstance(target_timezones, list) or not target_timezones:
        raise ValueError("target_timezones must be a non-empty list of IANA zone names")
    rows = []
    for zone in target_timezones:
        if zone not in ZONES:
            raise ValueError(f"unsupported time zone {zone!r}; supported: {', '.join(sorted(ZONES))}")
        offset, dst = _utc_offset(zone, instant)
        local = instant.astimezone(dt.timezone(dt.timedelta(minutes=offset)))
        in_hours = local.weekday() < 5 and 9 <= local.hour < 18
        if working_hours_only and not in_hours:
            continue
        rows.append({"timezone": zone, "local_time": local.isoformat(), "abbreviation": ZONES[zone][3 if dst else 2],
                     "weekday": local.strftime("%A"), "within_working_hours": in_hours})
    return {"utc": instant.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"), "conversions": rows}
