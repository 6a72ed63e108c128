"""Implementations of the hr_recruiting catalog tools (deterministic, side-effect free)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from slmtune.catalog.common import seeded_rng

# 2024 US federal income tax brackets (IRS Rev. Proc. 2023-34): (upper bound of bracket, rate).
_BRACKETS: dict[str, list[tuple[float, float]]] = {
    "single": [(11600, 0.10), (47150, 0.12), (100525, 0.22), (191950, 0.24), (243725, 0.32),
               (609350, 0.35), (float("inf"), 0.37)],
    "married_joint": [(23200, 0.10), (94300, 0.12), (201050, 0.22), (383900, 0.24), (487450, 0.32),
                      (731200, 0.35), (float("inf"), 0.37)],
    "head_of_household": [(16550, 0.10), (63100, 0.12), (100500, 0.22), (191950, 0.24), (243700, 0.32),
                          (609350, 0.35), (float("inf"), 0.37)],
}
_STANDARD_DEDUCTION = {"single": 14600.0, "married_joint": 29200.0, "head_of_household": 21900.0}
_SOCIAL_SECURITY_RATE = 0.062
_SOCIAL_SECURITY_WAGE_BASE = 168600.0
_MEDICARE_RATE = 0.0145
_ADDITIONAL_MEDICARE_RATE = 0.009
_ADDITIONAL_MEDICARE_THRESHOLD = {"single": 200000.0, "married_joint": 250000.0, "head_of_household": 200000.0}
_PERIODS = {"weekly": 52, "biweekly": 26, "semimonthly": 24, "monthly": 12}

_FIRST_NAMES = ["Aisha", "Bruno", "Chen", "Dana", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kavya",
                "Luca", "Maya", "Nikolai", "Olu", "Priya", "Rafael", "Sofia", "Tomas", "Yara"]
_LAST_NAMES = ["Okafor", "Lindqvist", "Nakamura", "Garcia", "Haddad", "Novak", "Patel", "Schmidt", "Moreau",
               "Kowalski", "Silva", "Andersen", "Reyes", "Ivanova", "Mensah", "Rossi"]
_DEPARTMENTS = ["Engineering", "Finance", "Marketing", "People Operations", "Sales", "Customer Success", "Legal"]
_TITLES = ["Software Engineer II", "Senior Accountant", "Product Marketing Manager", "HR Business Partner",
           "Account Executive", "Support Team Lead", "Data Analyst", "Staff Engineer"]


def _parse_date(value: str, name: str) -> date:
    """Parse an ISO date or raise ValueError naming the parameter."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a date in YYYY-MM-DD format, got {value!r}") from exc


def _parse_datetime(value: str, name: str) -> datetime:
    """Parse an ISO 8601 date-time or raise ValueError naming the parameter."""
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an ISO 8601 date-time, got {value!r}") from exc


def compute_payroll_tax(gross_annual_salary: float, filing_status: str, pay_frequency: str = "biweekly",
                        pre_tax_deductions: float = 0.0, include_fica: bool = True) -> dict[str, Any]:
    """Compute 2024 US federal income tax and FICA withholding for a salary."""
    if filing_status not in _BRACKETS:
        raise ValueError(f"filing_status must be one of {sorted(_BRACKETS)}, got {filing_status!r}")
    if pay_frequency not in _PERIODS:
        raise ValueError(f"pay_frequency must be one of {sorted(_PERIODS)}, got {pay_frequency!r}")
    if gross_annual_salary < 0:
        raise ValueError("gross_annual_salary must be >= 0")
    if pre_tax_deductions < 0 or pre_tax_deductions > gross_annual_salary:
        raise ValueError("pre_tax_deductions must be between 0 and gross_annual_salary")
    taxable = max(0.0, gross_annual_salary - pre_tax_deductions - _STANDARD_DEDUCTION[filing_status])
    income_tax = 0.0
    lower = 0.0
    marginal = 0.0
    for upper, rate in _BRACKETS[filing_status]:
        if taxable > lower:
            income_tax += (min(taxable, upper) - lower) * rate
            marginal = rate
        lower = upper
    social_security = medicare = 0.0
    if include_fica:
        fica_wages = gross_annual_salary
        social_security = min(fica_wages, _SOCIAL_SECURITY_WAGE_BASE) * _SOCIAL_SECURITY_RATE
        medicare = fica_wages * _MEDICARE_RATE
        medicare += max(0.0, fica_wages - _ADDITIONAL_MEDICARE_THRESHOLD[filing_status]) * _ADDITIONAL_MEDICARE_RATE
    total = income_tax + social_security + medicare
    periods = _PERIODS[pay_frequency]
    return {
        "tax_year": 2024,
        "filing_status": filing_status,
        "taxable_income": round(taxable, 2),
        "federal_income_tax": round(income_tax, 2),
        "social_security": round(social_security, 2),
        "medicare": round(medicare, 2),
        "total_annual_tax": round(total, 2),
        "marginal_rate": marginal,
        "effective_rate": round(total / gross_annual_salary, 4) if gross_annual_salary else 0.0,
        "pay_frequency": pay_frequency,
        "withholding_per_period": round(total / periods, 2),
        "net_pay_per_period": round((gross_annual_salary - pre_tax_deductions - total) / periods, 2),
    }


def search_candidates(skills: list[str], location: str = "", min_years_experience: int = 0,
                      remote_ok: bool = False, limit: int = 10) -> dict[str, Any]:
    """Search the applicant tracking system for candidates matching skills and filters."""
    if not skills:
        raise ValueError("skills must contain at least one skill")
    if not 0 <= min_years_experience <= 40:
        raise ValueError("min_years_experience must be between 0 and 40")
    if not 1 <= limit <= 50:
        raise ValueError("limit must be between 1 and 50")
    rng = seeded_rng("candidates", sorted(s.lower() for s in skills), location.lower(), min_years_experience, remote_ok)
    total = rng.randint(0, 40)
    results = []
    for _ in range(min(total, limit)):
        matched = sorted(rng.sample(skills, k=rng.randint(1, len(skills))))
        results.append({
            "candidate_id": f"CAND-{rng.randint(10000, 99999)}",
            "name": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
            "location": location or rng.choice(["Austin, TX", "Berlin", "Toronto", "Lisbon", "Bengaluru"]),
            "years_experience": rng.randint(min_years_experience, min_years_experience + 12),
            "matched_skills": matched,
            "open_to_remote": True if remote_ok else rng.random() < 0.5,
            "match_score": round(len(matched) / len(skills) * rng.uniform(0.8, 1.0), 2),
        })
    results.sort(key=lambda c: -c["match_score"])
    return {"total_matches": total, "returned": len(results), "candidates": results}


def schedule_interview(candidate_id: str, interviewer_emails: list[str], start: str, duration_minutes: int = 60,
                       interview_type: str = "technical", send_calendar_invites: bool = True) -> dict[str, Any]:
    """Book an interview slot for a candidate and return the confirmation."""
    types = {"phone_screen", "technical", "onsite", "panel", "culture_fit"}
    if interview_type not in types:
        raise ValueError(f"interview_type must be one of {sorted(types)}")
    if not interviewer_emails:
        raise ValueError("interviewer_emails must list at least one interviewer")
    if any("@" not in e for e in interviewer_emails):
        raise ValueError("every interviewer must be given as an email address")
    if not 15 <= duration_minutes <= 480:
        raise ValueError("duration_minutes must be between 15 and 480")
    begin = _parse_datetime(start, "start")
    end = begin + timedelta(minutes=duration_minutes)
    rng = seeded_rng("interview", candidate_id, start, sorted(interviewer_emails))
    return {
        "interview_id": f"INT-{rng.randint(100000, 999999)}",
        "candidate_id": candidate_id,
        "type": interview_type,
        "start": begin.isoformat(),
        "end": end.isoformat(),
        "interviewers": list(interviewer_emails),
        "invites_sent": send_calendar_invites,
        "status": "scheduled",
    }


def calculate_pto_accrual(hire_date: str, as_of_date: str, accrual_hours_per_month: float,
                          hours_used: float = 0.0, max_balance_hours: float = 240.0) -> dict[str, Any]:
    """Compute paid-time-off hours earned, used and available under a monthly accrual policy."""
    hired = _parse_date(hire_date, "hire_date")
    as_of = _parse_date(as_of_date, "as_of_date")
    if as_of < hired:
        raise ValueError("as_of_date must not be before hire_date")
    if accrual_hours_per_month <= 0 or accrual_hours_per_month > 40:
        raise ValueError("accrual_hours_per_month must be greater than 0 and at most 40")
    if hours_used < 0:
        raise ValueError("hours_used must be >= 0")
    if max_balance_hours <= 0:
        raise ValueError("max_balance_hours must be > 0")
    months = (as_of.year - hired.year) * 12 + (as_of.month - hired.month)
    if as_of.day < hired.day:
        months -= 1
    months = max(months, 0)
    earned = months * accrual_hours_per_month
    balance = earned - hours_used
    available = min(balance, max_balance_hours)
    return {
        "completed_months": months,
        "hours_earned": round(earned, 2),
        "hours_used": round(hours_used, 2),
        "available_hours": round(available, 2),
        "available_days": round(available / 8, 2),
        "capped": balance > max_balance_hours,
        "hours_forfeited_to_cap": round(max(0.0, balance - max_balance_hours), 2),
    }


def compute_overtime_pay(hourly_rate: float, daily_hours: list[float],
                         rule: str = "federal_weekly") -> dict[str, Any]:
    """Split a workweek into regular, overtime and double-time hours and compute gross pay."""
    if hourly_rate <= 0:
        raise ValueError("hourly_rate must be > 0")
    if not 1 <= len(daily_hours) <= 7:
        raise ValueError("daily_hours must have between 1 and 7 entries (one per day worked)")
    if any(h < 0 or h > 24 for h in daily_hours):
        raise ValueError("each entry of daily_hours must be between 0 and 24")
    if rule not in {"federal_weekly", "california_daily"}:
        raise ValueError("rule must be 'federal_weekly' or 'california_daily'")
    total = float(sum(daily_hours))
    if rule == "federal_weekly":
        regular = min(total, 40.0)
        overtime = max(total - 40.0, 0.0)
        double = 0.0
    else:
        regular = overtime = double = 0.0
        seventh_day = len(daily_hours) == 7 and all(h > 0 for h in daily_hours)
        for i, h in enumerate(daily_hours):
            if seventh_day and i == 6:
                overtime += min(h, 8.0)
                double += max(h - 8.0, 0.0)
                continue
            day_regular = min(h, 8.0)
            # Regular hours beyond 40 in the week become overtime.
            shift = max(0.0, regular + day_regular - 40.0)
            regular += day_regular - shift
            overtime += shift + min(max(h - 8.0, 0.0), 4.0)
            double += max(h - 12.0, 0.0)
    pay = regular * hourly_rate + overtime * hourly_rate * 1.5 + double * hourly_rate * 2.0
    return {
        "rule": rule,
        "total_hours": round(total, 2),
        "regular_hours": round(regular, 2),
        "overtime_hours": round(overtime, 2),
        "double_time_hours": round(double, 2),
        "gross_pay": round(pay, 2),
    }


def get_employee_profile(employee_id: str, include_compensation: bool = False) -> dict[str, Any]:
    """Look up an employee record in the HRIS."""
    if not employee_id.startswith("EMP-") or not employee_id[4:].isdigit():
        raise ValueError(f"employee_id must look like EMP-00421, got {employee_id!r}")
    rng = seeded_rng("employee", employee_id)
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    hired = date(2012, 1, 1) + timedelta(days=rng.randint(0, 4700))
    profile: dict[str, Any] = {
        "employee_id": employee_id,
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}@example.com",
        "title": rng.choice(_TITLES),
        "department": rng.choice(_DEPARTMENTS),
        "hire_date": hired.isoformat(),
        "employment_type": rng.choice(["full_time", "full_time", "full_time", "part_time", "contract"]),
        "manager_id": f"EMP-{rng.randint(100, 9999):05d}",
        "status": "active",
    }
    if include_compensation:
        base = rng.randrange(55000, 210000, 500)
        profile["compensation"] = {"base_salary": base, "currency": "USD",
                                   "bonus_target_percent": rng.choice([0, 5, 10, 15, 20])}
    return profile
