"""Implementations of the customer_support catalog tools (deterministic, side-effect free)."""

from __future__ import annotations

import calendar
import math
from datetime import date, datetime, timedelta, timezone
from typing import Any

from slmtune.catalog.common import seeded_rng

# First-response targets in minutes per priority.
_SLA_MINUTES = {"urgent": 60, "high": 240, "normal": 480, "low": 1440}
_BUSINESS_START, _BUSINESS_END = 9, 17  # 09:00-17:00 UTC, Monday to Friday
_STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
_SUBJECTS = ["Cannot log in after password reset", "Invoice shows wrong VAT number", "Export to CSV times out",
             "Refund not received", "Mobile app crashes on launch", "SSO setup with Okta fails",
             "Duplicate charge on card", "How do I add a teammate?", "Webhook deliveries delayed",
             "Need to change billing email"]
_AGENTS = ["maria.lopez", "tom.becker", "aiko.sato", "sam.okafor", "lena.fischer"]
_ARTICLE_TEMPLATES = ["How to {q}", "Troubleshooting {q}", "{q}: frequently asked questions", "Understanding {q}",
                      "Step-by-step guide: {q}", "Known issues with {q}"]


def _parse_dt(value: str, name: str) -> datetime:
    """Parse an ISO 8601 date-time as UTC (naive values are taken as UTC)."""
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an ISO 8601 date-time, got {value!r}") from exc
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _business_minutes(start: datetime, end: datetime) -> float:
    """Minutes between two UTC instants that fall within business hours on weekdays."""
    total = 0.0
    day = start.date()
    while day <= end.date():
        if day.weekday() < 5:
            open_t = datetime(day.year, day.month, day.day, _BUSINESS_START, tzinfo=timezone.utc)
            close_t = datetime(day.year, day.month, day.day, _BUSINESS_END, tzinfo=timezone.utc)
            lo, hi = max(start, open_t), min(end, close_t)
            if hi > lo:
                total += (hi - lo).total_seconds() / 60
        day += timedelta(days=1)
    return total


def search_tickets(status: str, priority: str = "any", assignee: str = "", tags: tuple[str, ...] | list[str] = (),
                   created_within_days: int = 30, limit: int = 25) -> dict[str, Any]:
    """Search helpdesk tickets by status, priority, assignee and tags."""
    if status not in _STATUSES:
        raise ValueError(f"status must be one of {list(_STATUSES)}")
    if priority not in {"any", *_SLA_MINUTES}:
        raise ValueError("priority must be any, low, normal, high or urgent")
    if not 1 <= created_within_days <= 365:
        raise ValueError("created_within_days must be between 1 and 365")
    if not 1 <= limit <= 100:
        raise ValueError("limit must be between 1 and 100")
    rng = seeded_rng("tickets", status, priority, assignee.lower(), sorted(tags), created_within_days)
    reference = datetime(2025, 6, 30, 12, 0, tzinfo=timezone.utc)
    tickets = []
    for _ in range(rng.randint(0, 60)):
        created = reference - timedelta(minutes=rng.randint(10, created_within_days * 1440))
        tickets.append({
            "ticket_id": f"TCK-{rng.randint(10000, 99999)}",
            "subject": rng.choice(_SUBJECTS),
            "status": status,
            "priority": priority if priority != "any" else rng.choice(list(_SLA_MINUTES)),
            "assignee": assignee or rng.choice(_AGENTS),
            "tags": sorted(set(tags) | set(rng.sample(["billing", "login", "api", "mobile", "vip"], k=1))),
            "created_at": created.isoformat().replace("+00:00", "Z"),
        })
    tickets.sort(key=lambda t: t["created_at"], reverse=True)
    return {"total": len(tickets), "tickets": tickets[:limit]}


def check_sla_breach(priority: str, created_at: str, first_response_at: str,
                     business_hours_only: bool = False) -> dict[str, Any]:
    """Check whether a ticket's first response met the SLA target for its priority."""
    if priority not in _SLA_MINUTES:
        raise ValueError(f"priority must be one of {list(_SLA_MINUTES)}")
    created = _parse_dt(created_at, "created_at")
    responded = _parse_dt(first_response_at, "first_response_at")
    if responded < created:
        raise ValueError("first_response_at must not be before created_at")
    if business_hours_only:
        elapsed = _business_minutes(created, responded)
    else:
        elapsed = (responded - created).total_seconds() / 60
    target = _SLA_MINUTES[priority]
    return {
        "priority": priority,
        "target_minutes": target,
        "clock": "business_hours" if business_hours_only else "calendar",
        "elapsed_minutes": round(elapsed, 1),
        "breached": elapsed > target,
        "margin_minutes": round(target - elapsed, 1),
        "percent_of_target_used": round(elapsed / target * 100, 1),
    }


def summarize_csat_ratings(ratings: list[int], satisfied_threshold: int = 4) -> dict[str, Any]:
    """Summarise 1-5 customer satisfaction ratings into a CSAT score and distribution."""
    if not ratings:
        raise ValueError("ratings must contain at least one rating")
    if any(not isinstance(r, int) or not 1 <= r <= 5 for r in ratings):
        raise ValueError("every rating must be an integer from 1 to 5")
    if not 3 <= satisfied_threshold <= 5:
        raise ValueError("satisfied_threshold must be 3, 4 or 5")
    n = len(ratings)
    satisfied = sum(1 for r in ratings if r >= satisfied_threshold)
    mean = sum(ratings) / n
    sd = math.sqrt(sum((r - mean) ** 2 for r in ratings) / (n - 1)) if n > 1 else 0.0
    return {
        "responses": n,
        "csat_percent": round(satisfied / n * 100, 1),
        "mean_rating": round(mean, 2),
        "std_dev": round(sd, 2),
        "distribution": {str(k): ratings.count(k) for k in range(1, 6)},
    }


def compute_net_promoter_score(scores: list[int]) -> dict[str, Any]:
    """Compute the Net Promoter Score of 0-10 survey answers with a 95% confidence interval."""
    if not scores:
        raise ValueError("scores must contain at least one answer")
    if any(not isinstance(s, int) or not 0 <= s <= 10 for s in scores):
        raise ValueError("every score must be an integer from 0 to 10")
    n = len(scores)
    promoters = sum(1 for s in scores if s >= 9) / n
    detractors = sum(1 for s in scores if s <= 6) / n
    nps = (promoters - detractors) * 100
    variance = promoters + detractors - (promoters - detractors) ** 2
    margin = 1.96 * math.sqrt(max(variance, 0.0) / n) * 100
    return {
        "responses": n,
        "nps": round(nps, 1),
        "promoters_percent": round(promoters * 100, 1),
        "passives_percent": round((1 - promoters - detractors) * 100, 1),
        "detractors_percent": round(detractors * 100, 1),
        "ci95": [round(max(-100.0, nps - margin), 1), round(min(100.0, nps + margin), 1)],
    }


def calculate_prorated_refund(plan_price: float, billing_period: str, period_start: str, cancel_date: str,
                              policy: str = "prorated_daily") -> dict[str, Any]:
    """Compute the refund owed when a subscription is cancelled part-way through a billing period."""
    if plan_price < 0:
        raise ValueError("plan_price must be >= 0")
    if billing_period not in {"monthly", "annual"}:
        raise ValueError("billing_period must be monthly or annual")
    if policy not in {"prorated_daily", "full_within_14_days", "none"}:
        raise ValueError("policy must be prorated_daily, full_within_14_days or none")
    try:
        start, cancel = date.fromisoformat(period_start), date.fromisoformat(cancel_date)
    except (TypeError, ValueError) as exc:
        raise ValueError("period_start and cancel_date must be YYYY-MM-DD") from exc
    if cancel < start:
        raise ValueError("cancel_date must not be before period_start")
    months = 1 if billing_period == "monthly" else 12
    total_m = start.year * 12 + start.month - 1 + months
    year, month = divmod(total_m, 12)
    end = date(year, month + 1, min(start.day, calendar.monthrange(year, month + 1)[1]))
    period_days = (end - start).days
    used_days = min((cancel - start).days, period_days)
    unused = period_days - used_days
    if policy == "none":
        refund = 0.0
    elif policy == "full_within_14_days":
        refund = plan_price if used_days <= 14 else plan_price * unused / period_days
    else:
        refund = plan_price * unused / period_days
    return {
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "days_in_period": period_days,
        "days_used": used_days,
        "days_unused": unused,
        "refund_amount": round(refund, 2),
        "policy": policy,
    }


def search_kb_articles(query: str, locale: str = "en-US", limit: int = 5,
                       include_internal: bool = False) -> dict[str, Any]:
    """Search the help-centre knowledge base for articles matching a question."""
    locales = {"en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP"}
    if locale not in locales:
        raise ValueError(f"locale must be one of {sorted(locales)}")
    if len(query.strip()) < 3:
        raise ValueError("query must have at least three characters")
    if not 1 <= limit <= 20:
        raise ValueError("limit must be between 1 and 20")
    rng = seeded_rng("kb", query.lower(), locale)
    topic = query.strip().rstrip("?").lower()
    articles = []
    for tmpl in rng.sample(_ARTICLE_TEMPLATES, k=len(_ARTICLE_TEMPLATES)):
        internal = rng.random() < 0.25
        if internal and not include_internal:
            continue
        articles.append({
            "article_id": f"KB-{rng.randint(1000, 9999)}",
            "title": tmpl.format(q=topic)[0].upper() + tmpl.format(q=topic)[1:],
            "locale": locale,
            "visibility": "internal" if internal else "public",
            "score": round(rng.uniform(0.35, 0.98), 3),
            "updated_on": (date(2024, 1, 1) + timedelta(days=rng.randint(0, 540))).isoformat(),
        })
    articles.sort(key=lambda a: -a["score"])
    return {"query": query, "locale": locale, "articles": articles[:limit]}
