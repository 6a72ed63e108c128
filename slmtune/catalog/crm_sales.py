"""Implementations of the crm_sales catalog tools (deterministic, side-effect free)."""

from __future__ import annotations

from typing import Any

from slmtune.catalog.common import seeded_rng

_INDUSTRIES = ("software", "healthcare", "manufacturing", "retail", "financial_services", "education", "logistics")
_TIERS = {"enterprise": (1_000_000_000, 50_000_000_000), "mid_market": (50_000_000, 1_000_000_000),
          "smb": (1_000_000, 50_000_000)}
_STAGE_PROBABILITY = {"prospecting": 0.10, "qualification": 0.25, "proposal": 0.50, "negotiation": 0.75}
_VOLUME_TIERS = [(500, 0.15), (100, 0.10), (50, 0.05), (0, 0.0)]
_TERM_MONTHS = {"monthly": 1, "annual": 12, "three_year": 36}
_NAME_A = ["Blue", "North", "Summit", "Iron", "Bright", "Cedar", "Harbor", "Nimbus", "Vertex", "Granite", "Lumen"]
_NAME_B = ["Logistics", "Health", "Systems", "Retail Group", "Analytics", "Labs", "Manufacturing", "Partners",
           "Financial", "Learning"]
_COUNTRIES = ["US", "DE", "GB", "FR", "CA", "JP", "BR", "IN", "AU", "NL"]


def search_accounts(industry: str, country: str = "", tier: str = "any", min_open_pipeline_usd: float = 0.0,
                    limit: int = 10) -> dict[str, Any]:
    """Search CRM accounts by industry, country, tier and open pipeline."""
    if industry not in _INDUSTRIES:
        raise ValueError(f"industry must be one of {list(_INDUSTRIES)}")
    if country and (len(country) != 2 or not country.isupper()):
        raise ValueError("country must be a two-letter ISO code such as DE, or empty for all countries")
    if tier != "any" and tier not in _TIERS:
        raise ValueError("tier must be any, enterprise, mid_market or smb")
    if min_open_pipeline_usd < 0:
        raise ValueError("min_open_pipeline_usd must be >= 0")
    if not 1 <= limit <= 100:
        raise ValueError("limit must be between 1 and 100")
    rng = seeded_rng("accounts", industry, country, tier)
    accounts = []
    for _ in range(rng.randint(3, 40)):
        acct_tier = tier if tier != "any" else rng.choice(list(_TIERS))
        lo, hi = _TIERS[acct_tier]
        pipeline = round(rng.uniform(0, 900_000), -3)
        if pipeline < min_open_pipeline_usd:
            continue
        accounts.append({
            "account_id": f"ACC-{rng.randint(100000, 999999)}",
            "name": f"{rng.choice(_NAME_A)} {rng.choice(_NAME_B)}",
            "industry": industry,
            "country": country or rng.choice(_COUNTRIES),
            "tier": acct_tier,
            "annual_revenue_usd": round(rng.uniform(lo, hi), -5),
            "open_pipeline_usd": pipeline,
            "owner": f"{rng.choice(['alex', 'sam', 'jordan', 'riley', 'casey'])}@ourcompany.com",
        })
    accounts.sort(key=lambda a: -a["open_pipeline_usd"])
    return {"total": len(accounts), "accounts": accounts[:limit]}


def compute_sales_commission(deal_amounts: list[float], quota: float, base_rate_percent: float = 8.0,
                             accelerator_rate_percent: float = 12.0) -> dict[str, Any]:
    """Compute a rep's commission with a base rate up to quota and an accelerator above it."""
    if not deal_amounts:
        raise ValueError("deal_amounts must contain at least one deal")
    if any(d < 0 for d in deal_amounts):
        raise ValueError("deal amounts must be >= 0")
    if quota <= 0:
        raise ValueError("quota must be > 0")
    if not 0 <= base_rate_percent <= 100 or not 0 <= accelerator_rate_percent <= 100:
        raise ValueError("commission rates must be between 0 and 100 percent")
    bookings = float(sum(deal_amounts))
    below = min(bookings, quota)
    above = max(bookings - quota, 0.0)
    base = below * base_rate_percent / 100
    accel = above * accelerator_rate_percent / 100
    return {
        "total_bookings": round(bookings, 2),
        "quota_attainment_percent": round(bookings / quota * 100, 2),
        "commission_below_quota": round(base, 2),
        "commission_above_quota": round(accel, 2),
        "total_commission": round(base + accel, 2),
        "effective_rate_percent": round((base + accel) / bookings * 100, 3) if bookings else 0.0,
    }


def compute_weighted_pipeline(stage_amounts: dict[str, float], quota: float = 0.0) -> dict[str, Any]:
    """Weight open pipeline by stage win probability and compare it with quota."""
    missing = [s for s in _STAGE_PROBABILITY if s not in stage_amounts]
    if missing:
        raise ValueError(f"stage_amounts is missing {missing}")
    if any(stage_amounts[s] < 0 for s in _STAGE_PROBABILITY):
        raise ValueError("stage amounts must be >= 0")
    if quota < 0:
        raise ValueError("quota must be >= 0")
    rows = {s: {"amount": stage_amounts[s], "probability": p, "weighted": round(stage_amounts[s] * p, 2)}
            for s, p in _STAGE_PROBABILITY.items()}
    total = sum(stage_amounts[s] for s in _STAGE_PROBABILITY)
    weighted = sum(r["weighted"] for r in rows.values())
    result: dict[str, Any] = {"stages": rows, "total_pipeline": round(total, 2),
                              "weighted_forecast": round(weighted, 2)}
    if quota > 0:
        result["pipeline_coverage_ratio"] = round(total / quota, 2)
        result["forecast_vs_quota_percent"] = round(weighted / quota * 100, 2)
        result["gap_to_quota"] = round(max(quota - weighted, 0.0), 2)
    return result


def compute_customer_ltv(avg_order_value: float, purchases_per_year: float, gross_margin_percent: float,
                         annual_churn_percent: float, discount_rate_percent: float = 10.0,
                         acquisition_cost: float = 0.0) -> dict[str, Any]:
    """Compute customer lifetime value with a constant retention rate and discounting."""
    if avg_order_value <= 0 or purchases_per_year <= 0:
        raise ValueError("avg_order_value and purchases_per_year must be > 0")
    if not 0 < gross_margin_percent <= 100:
        raise ValueError("gross_margin_percent must be greater than 0 and at most 100")
    if not 0 < annual_churn_percent <= 100:
        raise ValueError("annual_churn_percent must be greater than 0 and at most 100")
    if not 0 <= discount_rate_percent <= 100:
        raise ValueError("discount_rate_percent must be between 0 and 100")
    if acquisition_cost < 0:
        raise ValueError("acquisition_cost must be >= 0")
    annual_margin = avg_order_value * purchases_per_year * gross_margin_percent / 100
    retention = 1 - annual_churn_percent / 100
    d = discount_rate_percent / 100
    ltv = annual_margin * (1 + d) / (1 + d - retention)
    result: dict[str, Any] = {
        "annual_gross_margin_per_customer": round(annual_margin, 2),
        "expected_lifetime_years": round(1 / (annual_churn_percent / 100), 2),
        "lifetime_value": round(ltv, 2),
    }
    if acquisition_cost > 0:
        result["ltv_to_cac"] = round(ltv / acquisition_cost, 2)
        result["cac_payback_months"] = round(acquisition_cost / (annual_margin / 12), 1)
    return result


def calculate_quote(unit_price: float, quantity: int, billing_term: str = "annual", discount_percent: float = 0.0,
                    tax_rate_percent: float = 0.0) -> dict[str, Any]:
    """Price a per-seat subscription quote with volume tiers, discount and tax."""
    if unit_price <= 0:
        raise ValueError("unit_price must be > 0")
    if not 1 <= quantity <= 100000:
        raise ValueError("quantity must be between 1 and 100000")
    if billing_term not in _TERM_MONTHS:
        raise ValueError(f"billing_term must be one of {list(_TERM_MONTHS)}")
    if not 0 <= discount_percent <= 60:
        raise ValueError("discount_percent must be between 0 and 60 (larger discounts need deal desk approval)")
    if not 0 <= tax_rate_percent <= 30:
        raise ValueError("tax_rate_percent must be between 0 and 30")
    months = _TERM_MONTHS[billing_term]
    list_total = unit_price * quantity * months
    volume_rate = next(rate for floor, rate in _VOLUME_TIERS if quantity >= floor)
    volume_discount = list_total * volume_rate
    after_volume = list_total - volume_discount
    extra_discount = after_volume * discount_percent / 100
    subtotal = after_volume - extra_discount
    tax = subtotal * tax_rate_percent / 100
    return {
        "term_months": months,
        "list_total": round(list_total, 2),
        "volume_discount_percent": volume_rate * 100,
        "volume_discount": round(volume_discount, 2),
        "negotiated_discount": round(extra_discount, 2),
        "subtotal": round(subtotal, 2),
        "tax": round(tax, 2),
        "total": round(subtotal + tax, 2),
        "effective_price_per_seat_month": round(subtotal / quantity / months, 4),
    }
