"""Implementations of the real_estate catalog tools (deterministic, side-effect free)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from statistics import median
from typing import Any

from slmtune.catalog.common import seeded_rng

_PROPERTY_TYPES = ("single_family", "condo", "townhouse", "multi_family", "land")
_STREETS = ["Maple Ave", "Oak St", "Cedar Ln", "Willow Dr", "Harbor Rd", "Summit Blvd", "Pine Ct", "Elm St",
            "Lakeview Ter", "Juniper Way", "Birch Pl", "Ridge Rd"]


def _monthly_payment(principal: float, annual_rate_percent: float, months: int) -> float:
    """Level monthly payment of a fully amortising loan."""
    r = annual_rate_percent / 100 / 12
    if r == 0:
        return principal / months
    return principal * r / (1 - (1 + r) ** -months)


def amortization_schedule(principal: float, annual_rate_percent: float, term_years: int,
                          extra_monthly_payment: float = 0.0, granularity: str = "yearly") -> dict[str, Any]:
    """Build the amortisation schedule of a fixed-rate mortgage."""
    if principal <= 0:
        raise ValueError("principal must be > 0")
    if not 0 <= annual_rate_percent <= 25:
        raise ValueError("annual_rate_percent must be between 0 and 25")
    if not 1 <= term_years <= 40:
        raise ValueError("term_years must be between 1 and 40")
    if extra_monthly_payment < 0:
        raise ValueError("extra_monthly_payment must be >= 0")
    if granularity not in {"yearly", "monthly"}:
        raise ValueError("granularity must be 'yearly' or 'monthly'")
    months = term_years * 12
    payment = _monthly_payment(principal, annual_rate_percent, months)
    r = annual_rate_percent / 100 / 12
    balance = principal
    rows: list[dict[str, Any]] = []
    year_row = {"year": 1, "principal_paid": 0.0, "interest_paid": 0.0}
    total_interest = 0.0
    month = 0
    while balance > 0.005 and month < months:
        month += 1
        interest = balance * r
        principal_part = min(balance, payment - interest + extra_monthly_payment)
        balance -= principal_part
        total_interest += interest
        if granularity == "monthly":
            rows.append({"month": month, "payment": round(interest + principal_part, 2),
                         "principal": round(principal_part, 2), "interest": round(interest, 2),
                         "balance": round(max(balance, 0.0), 2)})
        year_row["principal_paid"] += principal_part
        year_row["interest_paid"] += interest
        if month % 12 == 0 or balance <= 0.005:
            if granularity == "yearly":
                rows.append({"year": year_row["year"], "principal_paid": round(year_row["principal_paid"], 2),
                             "interest_paid": round(year_row["interest_paid"], 2),
                             "ending_balance": round(max(balance, 0.0), 2)})
            year_row = {"year": year_row["year"] + 1, "principal_paid": 0.0, "interest_paid": 0.0}
    baseline_interest = payment * months - principal
    return {
        "monthly_payment": round(payment, 2),
        "monthly_payment_with_extra": round(payment + extra_monthly_payment, 2),
        "payoff_months": month,
        "total_interest": round(total_interest, 2),
        "interest_saved_by_extra": round(baseline_interest - total_interest, 2),
        "total_paid": round(principal + total_interest, 2),
        "schedule": rows,
    }


def estimate_home_affordability(annual_income: float, monthly_debts: float, down_payment: float,
                                annual_rate_percent: float, term_years: int = 30, max_dti_percent: float = 36.0,
                                property_tax_rate_percent: float = 1.1,
                                annual_insurance: float = 1500.0) -> dict[str, Any]:
    """Estimate the maximum home price a buyer can afford under a debt-to-income limit."""
    if annual_income <= 0:
        raise ValueError("annual_income must be > 0")
    if monthly_debts < 0 or down_payment < 0 or annual_insurance < 0:
        raise ValueError("monthly_debts, down_payment and annual_insurance must be >= 0")
    if not 0 <= annual_rate_percent <= 25:
        raise ValueError("annual_rate_percent must be between 0 and 25")
    if not 1 <= term_years <= 40:
        raise ValueError("term_years must be between 1 and 40")
    if not 10 <= max_dti_percent <= 60:
        raise ValueError("max_dti_percent must be between 10 and 60")
    if not 0 <= property_tax_rate_percent <= 5:
        raise ValueError("property_tax_rate_percent must be between 0 and 5")
    budget = annual_income / 12 * max_dti_percent / 100 - monthly_debts
    factor = _monthly_payment(1.0, annual_rate_percent, term_years * 12)
    tax_monthly = property_tax_rate_percent / 100 / 12
    if budget <= annual_insurance / 12:
        return {"affordable": False, "max_home_price": 0.0, "max_monthly_housing_payment": round(budget, 2),
                "reason": "existing debts use up the debt-to-income allowance"}
    price = (budget - annual_insurance / 12 + down_payment * factor) / (factor + tax_monthly)
    price = max(price, down_payment)
    loan = max(price - down_payment, 0.0)
    return {
        "affordable": True,
        "max_home_price": round(price, 2),
        "loan_amount": round(loan, 2),
        "down_payment_percent": round(down_payment / price * 100, 2) if price else 0.0,
        "max_monthly_housing_payment": round(budget, 2),
        "breakdown": {
            "principal_and_interest": round(loan * factor, 2),
            "property_tax": round(price * tax_monthly, 2),
            "insurance": round(annual_insurance / 12, 2),
        },
    }


def search_listings(city: str, price_range: dict[str, float], bedrooms_min: int = 1,
                    property_types: tuple[str, ...] | list[str] = ("single_family", "condo", "townhouse"),
                    sort_by: str = "newest", limit: int = 10) -> dict[str, Any]:
    """Search active for-sale listings in a city within a price range."""
    lo, hi = price_range.get("min"), price_range.get("max")
    if lo is None or hi is None:
        raise ValueError("price_range needs both min and max")
    if lo < 0 or hi <= lo:
        raise ValueError("price_range.max must be greater than price_range.min, and min must be >= 0")
    bad = [t for t in property_types if t not in _PROPERTY_TYPES]
    if bad or not property_types:
        raise ValueError(f"property_types must be a non-empty subset of {list(_PROPERTY_TYPES)}")
    if not 0 <= bedrooms_min <= 10:
        raise ValueError("bedrooms_min must be between 0 and 10")
    if sort_by not in {"newest", "price_asc", "price_desc", "price_per_sqft"}:
        raise ValueError("sort_by must be newest, price_asc, price_desc or price_per_sqft")
    if not 1 <= limit <= 50:
        raise ValueError("limit must be between 1 and 50")
    rng = seeded_rng("listings", city.lower(), lo, hi, bedrooms_min, sorted(property_types))
    listings = []
    for _ in range(rng.randint(0, 30)):
        ptype = rng.choice(list(property_types))
        beds = 0 if ptype == "land" else rng.randint(bedrooms_min, bedrooms_min + 3)
        sqft = 0 if ptype == "land" else rng.randint(550 + 250 * beds, 900 + 450 * beds)
        price = rng.randrange(int(lo), int(hi) + 1, 500) if hi - lo >= 500 else lo
        listings.append({
            "listing_id": f"MLS-{rng.randint(1000000, 9999999)}",
            "address": f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}, {city}",
            "property_type": ptype,
            "price": price,
            "bedrooms": beds,
            "bathrooms": 0 if ptype == "land" else rng.choice([1, 1.5, 2, 2.5, 3, 3.5]),
            "square_feet": sqft,
            "days_on_market": rng.randint(0, 120),
        })
    keys = {
        "newest": lambda x: x["days_on_market"],
        "price_asc": lambda x: x["price"],
        "price_desc": lambda x: -x["price"],
        "price_per_sqft": lambda x: x["price"] / x["square_feet"] if x["square_feet"] else float("inf"),
    }
    listings.sort(key=keys[sort_by])
    return {"city": city, "total": len(listings), "listings": listings[:limit]}


def get_listing_details(listing_id: str, include_price_history: bool = False) -> dict[str, Any]:
    """Return the full details of one MLS listing."""
    if not re.fullmatch(r"MLS-[0-9]{7}", listing_id):
        raise ValueError(f"listing_id must look like MLS-7730912, got {listing_id!r}")
    rng = seeded_rng("listing", listing_id)
    beds = rng.randint(1, 5)
    price = rng.randrange(180000, 1800000, 1000)
    listed = date(2025, 1, 1) + timedelta(days=rng.randint(0, 300))
    details: dict[str, Any] = {
        "listing_id": listing_id,
        "status": rng.choice(["active", "active", "pending", "contingent"]),
        "address": f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}",
        "property_type": rng.choice(["single_family", "condo", "townhouse"]),
        "list_price": price,
        "bedrooms": beds,
        "bathrooms": rng.choice([1, 1.5, 2, 2.5, 3]),
        "square_feet": rng.randint(600 + 300 * beds, 1000 + 500 * beds),
        "lot_size_acres": round(rng.uniform(0.05, 1.2), 2),
        "year_built": rng.randint(1925, 2024),
        "hoa_monthly": rng.choice([0, 0, 150, 275, 420]),
        "annual_property_tax": round(price * rng.uniform(0.006, 0.022), 2),
        "listed_on": listed.isoformat(),
    }
    if include_price_history:
        history = [{"date": listed.isoformat(), "event": "listed", "price": price}]
        current = price
        day = listed
        for _ in range(rng.randint(0, 3)):
            day += timedelta(days=rng.randint(10, 45))
            current = int(current * rng.uniform(0.94, 0.99) // 1000 * 1000)
            history.append({"date": day.isoformat(), "event": "price_change", "price": current})
        details["list_price"] = current
        details["price_history"] = history
    return details


def compute_rental_yield(purchase_price: float, monthly_rent: float, annual_operating_expenses: float = 0.0,
                         vacancy_rate_percent: float = 5.0, closing_costs: float = 0.0) -> dict[str, Any]:
    """Compute gross yield, net operating income and cap rate of a rental property."""
    if purchase_price <= 0:
        raise ValueError("purchase_price must be > 0")
    if monthly_rent <= 0:
        raise ValueError("monthly_rent must be > 0")
    if annual_operating_expenses < 0 or closing_costs < 0:
        raise ValueError("annual_operating_expenses and closing_costs must be >= 0")
    if not 0 <= vacancy_rate_percent <= 100:
        raise ValueError("vacancy_rate_percent must be between 0 and 100")
    gross_rent = monthly_rent * 12
    effective_rent = gross_rent * (1 - vacancy_rate_percent / 100)
    noi = effective_rent - annual_operating_expenses
    basis = purchase_price + closing_costs
    return {
        "gross_annual_rent": round(gross_rent, 2),
        "effective_annual_rent": round(effective_rent, 2),
        "net_operating_income": round(noi, 2),
        "gross_yield_percent": round(gross_rent / basis * 100, 2),
        "cap_rate_percent": round(noi / basis * 100, 2),
        "price_to_rent_ratio": round(purchase_price / gross_rent, 2),
        "meets_one_percent_rule": monthly_rent >= purchase_price * 0.01,
    }


def prorate_property_tax(annual_tax: float, closing_date: str, seller_prepaid: bool = False,
                         method: str = "actual_days", buyer_owns_closing_day: bool = True) -> dict[str, Any]:
    """Split a calendar-year property tax bill between seller and buyer at closing."""
    if annual_tax <= 0:
        raise ValueError("annual_tax must be > 0")
    if method not in {"actual_days", "banker_360"}:
        raise ValueError("method must be 'actual_days' or 'banker_360'")
    try:
        closing = date.fromisoformat(closing_date)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"closing_date must be YYYY-MM-DD, got {closing_date!r}") from exc
    if method == "actual_days":
        year_days = (date(closing.year + 1, 1, 1) - date(closing.year, 1, 1)).days
        seller_days = (closing - date(closing.year, 1, 1)).days
    else:
        year_days = 360
        seller_days = (closing.month - 1) * 30 + min(closing.day, 30) - 1
    if not buyer_owns_closing_day:
        seller_days += 1
    seller_share = annual_tax * seller_days / year_days
    buyer_share = annual_tax - seller_share
    if seller_prepaid:
        credit = {"credit_to": "seller", "amount": round(buyer_share, 2)}
    else:
        credit = {"credit_to": "buyer", "amount": round(seller_share, 2)}
    return {
        "method": method,
        "days_in_year": year_days,
        "seller_days": seller_days,
        "seller_share": round(seller_share, 2),
        "buyer_share": round(buyer_share, 2),
        "closing_credit": credit,
    }


def comparable_sales(address: dict[str, str], radius_miles: float = 1.0, months_back: int = 6,
                     max_results: int = 5) -> dict[str, Any]:
    """Find recent comparable sales near a property and summarise price per square foot."""
    for key in ("street", "city", "state", "postal_code"):
        if not address.get(key):
            raise ValueError(f"address.{key} is required")
    if not 0.1 <= radius_miles <= 10:
        raise ValueError("radius_miles must be between 0.1 and 10")
    if not 1 <= months_back <= 24:
        raise ValueError("months_back must be between 1 and 24")
    if not 1 <= max_results <= 20:
        raise ValueError("max_results must be between 1 and 20")
    rng = seeded_rng("comps", {k: address[k].lower() for k in ("street", "city", "state", "postal_code")})
    ppsf_base = rng.uniform(140, 900)
    comps = []
    for _ in range(max_results):
        sqft = rng.randint(900, 3400)
        ppsf = ppsf_base * rng.uniform(0.85, 1.15)
        sold = date(2025, 6, 30) - timedelta(days=rng.randint(1, months_back * 30))
        comps.append({
            "address": f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}, {address['city']}",
            "distance_miles": round(rng.uniform(0.05, radius_miles), 2),
            "sold_on": sold.isoformat(),
            "sale_price": int(round(sqft * ppsf, -3)),
            "square_feet": sqft,
            "price_per_sqft": round(ppsf, 2),
        })
    comps.sort(key=lambda c: c["distance_miles"])
    med = median(c["price_per_sqft"] for c in comps)
    return {"subject": address, "comparables": comps, "median_price_per_sqft": round(med, 2)}
