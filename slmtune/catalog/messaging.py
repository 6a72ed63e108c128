"""Messaging tools: team chat, SMS, email drafts and search, contacts and SMS segment counting."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from slmtune.catalog.common import int_in_range, one_of, seeded_rng

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE_RE = re.compile(r"\+[1-9]\d{7,14}")
CHANNEL_RE = re.compile(r"#[a-z0-9][a-z0-9_-]{0,79}")
HANDLE_RE = re.compile(r"@[A-Za-z0-9._-]{1,40}")

# GSM 03.38 default alphabet (one septet each) and its extension table (two septets: escape + char).
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")

FOLDERS = ("inbox", "sent", "archive", "spam", "all")
CONTACT_FIELDS = ("email", "phone", "title", "department", "location")


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _text(value: str, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{name} must be at most {limit} characters, got {len(value)}")
    return value


def _emails(values: list[str] | None, name: str) -> list[str]:
    values = list(values or [])
    for v in values:
        if not isinstance(v, str) or not EMAIL_RE.fullmatch(v):
            raise ValueError(f"{name}: {v!r} is not a valid email address")
    return values


def _segments(text: str, encoding: str) -> dict[str, Any]:
    """Split a message into SMS segments exactly as GSM-7 or UCS-2 concatenated SMS would."""
    replaced: list[str] = []
    if encoding == "auto":
        encoding = "gsm7" if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else "ucs2"
    if encoding == "gsm7":
        units = []
        for c in text:
            if c in GSM7_BASIC:
                units.append(1)
            elif c in GSM7_EXTENSION:
                units.append(2)
            else:
                replaced.append(c)
                units.append(1)         # sent as '?'
        single, multi = 160, 153
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]     # UTF-16 code units; pairs stay together
        single, multi = 70, 67
    total = sum(units)
    if total <= single:
        count = 1 if text else 0
    else:
        count, used = 1, 0
        for u in units:
            if used + u > multi:
                count, used = count + 1, 0
            used += u
    return {"encoding": encoding, "characters": len(text), "code_units": total, "segments": count,
            "per_segment_limit": single if count <= 1 else multi, "replaced_characters": sorted(set(replaced))}


def post_message(
    channel: str, text: str, mention_users: list[str] | None = None, thread_id: str = "", urgent: bool = False
) -> dict[str, Any]:
    """Post a message to a team-chat channel, optionally in a thread and mentioning users."""
    if not isinstance(channel, str) or not CHANNEL_RE.fullmatch(channel):
        raise ValueError(f"channel must look like #eng-oncall (lower-case, starting with #), got {channel!r}")
    _text(text, "text", 4000)
    users = list(mention_users or [])
    for u in users:
        if not isinstance(u, str) or not HANDLE_RE.fullmatch(u):
            raise ValueError(f"mention_users: {u!r} is not a handle like @maria")
    if thread_id and not re.fullmatch(r"\d{10}\.\d{6}", thread_id):
        raise ValueError(f"thread_id must look like 1718031234.005600, got {thread_id!r}")
    ts_seed = int(_digest(channel, text, thread_id)[:8], 16)
    body = " ".join(users + [text]) if users else text
    if urgent:
        body = ":rotating_light: " + body
    return {"ok": True, "channel": channel, "ts": f"{1735000000 + ts_seed % 30000000}.{ts_seed % 1000000:06d}",
            "thread_id": thread_id or None, "text": body, "mentions": users, "urgent": urgent}


def send_text(to: str, body: str, delay_minutes: int = 0) -> dict[str, Any]:
    """Queue an SMS to an E.164 phone number and report its segment count."""
    if not isinstance(to, str) or not PHONE_RE.fullmatch(to):
        raise ValueError(f"to must be an E.164 phone number such as +14155550132, got {to!r}")
    _text(body, "body", 1600)
    int_in_range(delay_minutes, 0, 10080, "delay_minutes")
    info = _segments(body, "auto")
    return {"message_id": f"SM{_digest(to, body)[:16]}", "to": to, "status": "scheduled" if delay_minutes else "queued",
            "send_in_minutes": delay_minutes, "segments": info["segments"], "encoding": info["encoding"]}


def compose_draft(
    to: list[str], subject: str, body: str, cc: list[str] | None = None, importance: str = "normal"
) -> dict[str, Any]:
    """Save an email draft and return its ID and a preview."""
    recipients = _emails(to, "to")
    if not recipients:
        raise ValueError("to must list at least one email address")
    copies = _emails(cc, "cc")
    _text(subject, "subject", 255)
    _text(body, "body", 20000)
    one_of(importance, ("low", "normal", "high"), "importance")
    return {"draft_id": f"DRF-{_digest(recipients, subject)[:8].upper()}", "to": recipients, "cc": copies,
            "subject": subject, "importance": importance, "word_count": len(body.split()),
            "preview": body[:80]}


def search_inbox(
    query: str,
    sender: str = "",
    newer_than_days: int = 30,
    has_attachment: bool = False,
    folder: str = "inbox",
    max_results: int = 20,
) -> dict[str, Any]:
    """Search mail by keywords and filters over a deterministic sample mailbox."""
    _text(query, "query", 200)
    if sender and not EMAIL_RE.fullmatch(sender):
        raise ValueError(f"sender must be an email address, got {sender!r}")
    int_in_range(newer_than_days, 1, 3650, "newer_than_days")
    one_of(folder, FOLDERS, "folder")
    int_in_range(max_results, 1, 100, "max_results")
    rng = seeded_rng("mail", query.lower(), folder)
    senders = ["billing@northwind.example", "hr@example.com", "noreply@airline.example", "maya.chen@example.com",
               "support@acme.example", "leo.martin@example.com"]
    hits = []
    for _ in range(rng.randint(3, 30)):
        msg = {"message_id": f"MSG-{rng.randint(10**7, 10**8 - 1)}",
               "from": sender or rng.choice(senders),
               "subject": f"{rng.choice(['Re: ', 'Fwd: ', '', ''])}{query.strip().capitalize()} "
                          f"{rng.choice(['update', 'details', 'question', 'receipt', 'follow-up'])}",
               "days_ago": rng.randint(0, 400), "has_attachment": rng.random() < 0.35,
               "folder": folder if folder != "all" else rng.choice(FOLDERS[:4]), "unread": rng.random() < 0.3}
        if msg["days_ago"] > newer_than_days or (has_attachment and not msg["has_attachment"]):
            continue
        hits.append(msg)
    hits.sort(key=lambda m: m["days_ago"])
    return {"query": query, "total": len(hits), "messages": hits[:max_results]}


def create_channel(
    name: str, is_private: bool = False, members: list[str] | None = None, topic: str = ""
) -> dict[str, Any]:
    """Create a team-chat channel and invite members."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,79}", name):
        raise ValueError(f"name must be lower-case letters, digits, '-' or '_' without '#', got {name!r}")
    people = list(members or [])
    for m in people:
        if not isinstance(m, str) or not HANDLE_RE.fullmatch(m):
            raise ValueError(f"members: {m!r} is not a handle like @maria")
    if len(topic) > 250:
        raise ValueError("topic must be at most 250 characters")
    return {"ok": True, "channel": f"#{name}", "channel_id": f"C{_digest(name)[:9].upper()}",
            "is_private": is_private, "members_invited": people, "topic": topic}


def sms_segment_count(text: str, encoding: str = "auto") -> dict[str, Any]:
    """Count how many SMS segments a message needs under GSM-7 or UCS-2 encoding."""
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    if len(text) > 10000:
        raise ValueError("text must be at most 10000 characters")
    one_of(encoding, ("auto", "gsm7", "ucs2"), "encoding")
    return _segments(text, encoding)


def set_status(
    status_text: str, emoji: str = ":speech_balloon:", expires_in_minutes: int = 0, do_not_disturb: bool = False
) -> dict[str, Any]:
    """Set the user's chat status, optionally expiring and pausing notifications."""
    _text(status_text, "status_text", 100)
    if not isinstance(emoji, str) or not re.fullmatch(r":[a-z0-9_+-]+:", emoji):
        raise ValueError(f"emoji must be a shortcode like :palm_tree:, got {emoji!r}")
    int_in_range(expires_in_minutes, 0, 10080, "expires_in_minutes")
    return {"ok": True, "status_text": status_text, "emoji": emoji,
            "expires_in_minutes": expires_in_minutes or None, "do_not_disturb": do_not_disturb,
            "notifications_paused_minutes": (expires_in_minutes or 60) if do_not_disturb else 0}


def find_person(name: str, fields: list[str] | None = None, limit: int = 5) -> dict[str, Any]:
    """Look up people in a deterministic sample company directory by name."""
    _text(name, "name", 100)
    wanted = list(fields or CONTACT_FIELDS)
    for f in wanted:
        one_of(f, CONTACT_FIELDS, "fields item")
    int_in_range(limit, 1, 20, "limit")
    parts = name.strip().split()
    rng = seeded_rng("people", name.strip().lower())
    surnames = ["Nguyen", "Schmidt", "Okafor", "Garcia", "Kowalski", "Tanaka", "Haddad", "Larsen", "Silva"]
    firsts = ["Alex", "Sam", "Maria", "Wei", "Fatima", "Lucas", "Aisha", "Noah", "Elena"]
    people = []
    for i in range(rng.randint(1, 4)):
        first = parts[0].capitalize() if parts else rng.choice(firsts)
        last = parts[-1].capitalize() if len(parts) > 1 and i == 0 else rng.choice(surnames)
        full = {
            "email": f"{first.lower()}.{last.lower()}@example.com",
            "phone": f"+1415555{rng.randint(100, 199):04d}",
            "title": rng.choice(["Product Manager", "Staff Engineer", "Account Executive", "Designer",
                                 "Finance Analyst", "Recruiter"]),
            "department": rng.choice(["Product", "Engineering", "Sales", "Design", "Finance", "People"]),
            "location": rng.choice(["San Francisco", "London", "Berlin", "Remote - Toronto", "Singapore"]),
        }
        people.append({"name": f"{first} {last}", **{f: full[f] for f in wanted}})
    return {"query": name, "matches": people[:limit]}
