"""Implementations of the legal_compliance catalog tools (deterministic, side-effect free).

The limitation periods and retention schedule below are fixed reference tables for the catalog; they ignore
discovery rules, tolling and exceptions and are not legal advice.
"""

from __future__ import annotations

import calendar
import difflib
import re
from datetime import date
from typing import Any

from slmtune.catalog.common import seeded_rng

# General limitation periods in years (no discovery rule or tolling applied).
_LIMITATION_YEARS: dict[str, dict[str, int]] = {
    "CA": {"breach_of_written_contract": 4, "breach_of_oral_contract": 2, "personal_injury": 2, "fraud": 3},
    "NY": {"breach_of_written_contract": 6, "breach_of_oral_contract": 6, "personal_injury": 3, "fraud": 6},
    "TX": {"breach_of_written_contract": 4, "breach_of_oral_contract": 4, "personal_injury": 2, "fraud": 4},
    "FL": {"breach_of_written_contract": 5, "breach_of_oral_contract": 4, "personal_injury": 2, "fraud": 4},
    "IL": {"breach_of_written_contract": 10, "breach_of_oral_contract": 5, "personal_injury": 2, "fraud": 5},
}
# Company records retention schedule: (unit, amount) per record category and jurisdiction.
_RETENTION: dict[str, dict[str, tuple[str, int]]] = {
    "payroll": {"us": ("years", 4), "uk": ("years", 6), "de": ("years", 10)},
    "tax_returns": {"us": ("years", 7), "uk": ("years", 6), "de": ("years", 10)},
    "customer_invoices": {"us": ("years", 7), "uk": ("years", 6), "de": ("years", 8)},
    "employee_medical": {"us": ("years", 30), "uk": ("years", 40), "de": ("years", 10)},
    "cctv_footage": {"us": ("days", 30), "uk": ("days", 31), "de": ("days", 3)},
    "job_applications": {"us": ("years", 1), "uk": ("months", 6), "de": ("months", 6)},
}
# Fictional demonstration watchlist used by the screening tool.
_WATCHLIST = [
    {"name": "Crimson Delta Shipping", "type": "organization", "list": "ofac_sdn", "country": "PA"},
    {"name": "Golden Steppe Minerals", "type": "organization", "list": "eu_consolidated", "country": "KZ"},
    {"name": "Borealis Petrochem Trading", "type": "organization", "list": "uk_hmt", "country": "AE"},
    {"name": "Arkon Vessel Leasing", "type": "organization", "list": "un_sc", "country": "CY"},
    {"name": "MV Silent Meridian", "type": "vessel", "list": "ofac_sdn", "country": "KM"},
    {"name": "Aurelio Zentrasov", "type": "individual", "list": "eu_consolidated", "country": "RU"},
    {"name": "Mirela Quastor Vang", "type": "individual", "list": "uk_hmt", "country": "BY"},
]
_LISTS = ("ofac_sdn", "eu_consolidated", "uk_hmt", "un_sc")
_CLAUSE_TEXT = {
    "indemnification": "Each party shall indemnify and hold harmless the other against third-party claims "
                       "arising from its breach of this Agreement.",
    "liability": "Neither party's aggregate liability shall exceed the fees paid in the twelve months preceding "
                 "the claim.",
    "termination": "Either party may terminate for convenience on ninety days' written notice.",
    "confidentiality": "The receiving party shall protect Confidential Information with at least reasonable care "
                       "for five years after disclosure.",
    "renewal": "This Agreement renews automatically for successive one-year terms unless either party gives "
               "sixty days' notice.",
    "jurisdiction": "This Agreement is governed by the laws of the State of Delaware.",
    "assignment": "Neither party may assign this Agreement without the other party's prior written consent.",
    "noncompete": "During the term and for twelve months thereafter, Supplier shall not provide similar services "
                  "to Customer's direct competitors.",
}


def _parse_date(value: str, name: str) -> date:
    """Parse an ISO date or raise ValueError naming the parameter."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a date in YYYY-MM-DD format, got {value!r}") from exc


def _add_months(d: date, months: int) -> date:
    """Add calendar months; a missing day becomes the last day of the month."""
    total = d.year * 12 + d.month - 1 + months
    year, month = divmod(total, 12)
    month += 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _add(d: date, unit: str, amount: int) -> date:
    """Add days, months or years to a date."""
    if unit == "days":
        return date.fromordinal(d.toordinal() + amount)
    return _add_months(d, amount * (12 if unit == "years" else 1))


def gdpr_request_deadline(request_type: str, received_date: str, extended: bool = False) -> dict[str, Any]:
    """Compute the GDPR Article 12(3) response deadline for a data-subject request."""
    types = {"access", "erasure", "rectification", "portability", "restriction", "objection"}
    if request_type not in types:
        raise ValueError(f"request_type must be one of {sorted(types)}")
    received = _parse_date(received_date, "received_date")
    base = _add_months(received, 1)
    deadline = _add_months(received, 3) if extended else base
    return {
        "request_type": request_type,
        "received_date": received.isoformat(),
        "standard_deadline": base.isoformat(),
        "deadline": deadline.isoformat(),
        "extended": extended,
        "days_allowed": (deadline - received).days,
        "notes": ("The data subject must be told about the extension and its reasons by "
                  f"{base.isoformat()}.") if extended else "One month from receipt; extendable by two months.",
    }


def search_contract_clauses(contract_id: str, clause_types: list[str], include_text: bool = False) -> dict[str, Any]:
    """Find clauses of given types in a contract and flag non-standard ones."""
    if not re.fullmatch(r"CTR-[0-9]{4}-[0-9]{3,5}", contract_id):
        raise ValueError(f"contract_id must look like CTR-2024-0187, got {contract_id!r}")
    bad = [c for c in clause_types if c not in _CLAUSE_TEXT]
    if bad or not clause_types:
        raise ValueError(f"clause_types must be a non-empty subset of {sorted(_CLAUSE_TEXT)}")
    rng = seeded_rng("clauses", contract_id)
    found = []
    for clause in clause_types:
        present = rng.random() < 0.85
        entry: dict[str, Any] = {"clause_type": clause, "present": present}
        if present:
            entry["section"] = f"{rng.randint(2, 14)}.{rng.randint(1, 6)}"
            entry["page"] = rng.randint(2, 30)
            entry["deviates_from_playbook"] = rng.random() < 0.3
            if include_text:
                entry["text"] = _CLAUSE_TEXT[clause]
        found.append(entry)
    return {"contract_id": contract_id, "clauses": found,
            "flagged": [c["clause_type"] for c in found if c.get("deviates_from_playbook")]}


def compute_statute_deadline(claim_type: str, state: str, accrual_date: str) -> dict[str, Any]:
    """Compute the filing deadline of a civil claim from a fixed limitation-period table."""
    if state not in _LIMITATION_YEARS:
        raise ValueError(f"state must be one of {sorted(_LIMITATION_YEARS)}")
    if claim_type not in _LIMITATION_YEARS[state]:
        raise ValueError(f"claim_type must be one of {sorted(_LIMITATION_YEARS[state])}")
    accrued = _parse_date(accrual_date, "accrual_date")
    years = _LIMITATION_YEARS[state][claim_type]
    deadline = _add_months(accrued, 12 * years)
    return {
        "state": state,
        "claim_type": claim_type,
        "limitation_years": years,
        "accrual_date": accrued.isoformat(),
        "filing_deadline": deadline.isoformat(),
        "caveat": "General period only; discovery rules, tolling and exceptions are not applied.",
    }


def _normalise(name: str) -> str:
    """Lower-case a name and strip punctuation and legal suffixes for fuzzy matching."""
    text = re.sub(r"[^a-z0-9 ]", " ", name.lower())
    text = re.sub(r"\b(ltd|llc|inc|co|corp|gmbh|sa|fze|plc|company|limited)\b", " ", text)
    return " ".join(text.split())


def screen_party(name: str, entity_type: str = "organization", country: str = "",
                 lists: tuple[str, ...] | list[str] = _LISTS, min_score: float = 0.85) -> dict[str, Any]:
    """Screen a name against sanctions lists with fuzzy matching."""
    if entity_type not in {"individual", "organization", "vessel"}:
        raise ValueError("entity_type must be individual, organization or vessel")
    bad = [x for x in lists if x not in _LISTS]
    if bad or not lists:
        raise ValueError(f"lists must be a non-empty subset of {list(_LISTS)}")
    if not 0.5 <= min_score <= 1.0:
        raise ValueError("min_score must be between 0.5 and 1.0")
    if len(name.strip()) < 2:
        raise ValueError("name must have at least two characters")
    target = _normalise(name)
    hits = []
    for entry in _WATCHLIST:
        if entry["list"] not in lists or entry["type"] != entity_type:
            continue
        score = difflib.SequenceMatcher(None, target, _normalise(entry["name"])).ratio()
        if country and entry["country"] == country:
            score = min(1.0, score + 0.03)
        if score >= min_score:
            hits.append({"listed_name": entry["name"], "list": entry["list"], "score": round(score, 3),
                         "listed_country": entry["country"]})
    hits.sort(key=lambda h: -h["score"])
    status = "no_match" if not hits else "confirmed_match" if hits[0]["score"] >= 0.98 else "potential_match"
    return {"screened_name": name, "entity_type": entity_type, "lists_checked": list(lists), "status": status,
            "matches": hits}


def compute_late_payment_interest(principal: float, annual_rate_percent: float, due_date: str, payment_date: str,
                                  compounding: str = "simple", day_count: str = "actual_365") -> dict[str, Any]:
    """Compute interest owed on a late payment between its due date and the payment date."""
    if principal <= 0:
        raise ValueError("principal must be > 0")
    if not 0 <= annual_rate_percent <= 50:
        raise ValueError("annual_rate_percent must be between 0 and 50")
    if compounding not in {"simple", "monthly", "daily"}:
        raise ValueError("compounding must be simple, monthly or daily")
    if day_count not in {"actual_365", "actual_360"}:
        raise ValueError("day_count must be actual_365 or actual_360")
    due = _parse_date(due_date, "due_date")
    paid = _parse_date(payment_date, "payment_date")
    days = max((paid - due).days, 0)
    basis = 365 if day_count == "actual_365" else 360
    r = annual_rate_percent / 100
    t = days / basis
    if compounding == "simple":
        interest = principal * r * t
    elif compounding == "monthly":
        interest = principal * ((1 + r / 12) ** (12 * t) - 1)
    else:
        interest = principal * ((1 + r / basis) ** days - 1)
    return {
        "days_late": days,
        "interest": round(interest, 2),
        "total_due": round(principal + interest, 2),
        "daily_rate_percent": round(annual_rate_percent / basis, 6),
    }


def check_data_retention(record_category: str, jurisdiction: str, created_date: str, as_of_date: str,
                         legal_hold: bool = False) -> dict[str, Any]:
    """Check a record against the company retention schedule and say whether to keep or delete it."""
    if record_category not in _RETENTION:
        raise ValueError(f"record_category must be one of {sorted(_RETENTION)}")
    if jurisdiction not in {"us", "uk", "de"}:
        raise ValueError("jurisdiction must be us, uk or de")
    created = _parse_date(created_date, "created_date")
    as_of = _parse_date(as_of_date, "as_of_date")
    if as_of < created:
        raise ValueError("as_of_date must not be before created_date")
    unit, amount = _RETENTION[record_category][jurisdiction]
    retain_until = _add(created, unit, amount)
    if legal_hold:
        action = "retain_legal_hold"
    elif as_of <= retain_until:
        action = "retain"
    else:
        action = "delete"
    return {
        "record_category": record_category,
        "jurisdiction": jurisdiction,
        "retention_period": f"{amount} {unit}",
        "retain_until": retain_until.isoformat(),
        "action": action,
        "days_past_retention": max((as_of - retain_until).days, 0),
    }
