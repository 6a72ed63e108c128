"""Finance tools: currency conversion, loans, growth projections, portfolios, quotes, budgets, tax and payments."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from slmtune.catalog.common import int_in_range, number_in_range, one_of, seeded_rng

# Units of each currency per 1 USD (fixed reference snapshot; not live rates).
USD_RATES: dict[str, float] = {
    "USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.2, "CHF": 0.88, "CAD": 1.37, "AUD": 1.53, "NZD": 1.66,
    "CNY": 7.24, "INR": 83.4, "MXN": 17.1, "BRL": 5.05, "ZAR": 18.6, "SEK": 10.6, "NOK": 10.8, "SGD": 1.35,
    "KRW": 1355.0, "HKD": 7.82, "AED": 3.6725, "PLN": 3.98,
}
ZERO_DECIMAL = {"JPY", "KRW"}

# US federal income-tax brackets: year -> status -> upper bounds of the 10/12/22/24/32/35 % brackets (37 % above).
BRACKETS: dict[int, dict[str, tuple[int, ...]]] = {
    2024: {
        "single": (11600, 47150, 100525, 191950, 243725, 609350),
        "married_joint": (23200, 94300, 201050, 383900, 487450, 731200),
        "married_separate": (11600, 47150, 100525, 191950, 243725, 365600),
        "head_of_household": (16550, 63100, 100500, 191950, 243700, 609350),
    },
    2025: {
        "single": (11925, 48475, 103350, 197300, 250525, 626350),
        "married_joint": (23850, 96950, 206700, 394600, 501050, 751600),
        "married_separate": (11925, 48475, 103350, 197300, 250525, 375800),
        "head_of_household": (17000, 64850, 103350, 197300, 250500, 626350),
    },
}
RATES = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)
STANDARD_DEDUCTION: dict[int, dict[str, int]] = {
    2024: {"single": 14600, "married_joint": 29200, "married_separate": 14600, "head_of_household": 21900},
    2025: {"single": 15750, "married_joint": 31500, "married_separate": 15750, "head_of_household": 23625},
}

CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "groceries": ("whole foods", "trader joe", "safeway", "kroger", "aldi", "lidl", "tesco", "grocery", "market"),
    "dining": ("restaurant", "cafe", "coffee", "starbucks", "pizza", "sushi", "bistro", "doordash", "uber eats",
               "chipotle", "bar "),
    "transport": ("uber", "lyft", "shell", "chevron", "bp ", "gas station", "fuel", "metro", "transit", "parking",
                  "toll"),
    "subscriptions": ("netflix", "spotify", "hulu", "disney+", "icloud", "subscription", "prime membership"),
    "utilities": ("electric", "water bill", "comcast", "verizon", "at&t", "internet", "utility", "pg&e"),
    "housing": ("rent", "mortgage", "hoa", "landlord"),
    "health": ("pharmacy", "cvs", "walgreens", "dental", "clinic", "gym", "fitness"),
    "shopping": ("amazon", "target", "walmart", "ikea", "best buy", "apple store", "zara"),
    "travel": ("airlines", "airbnb", "hotel", "marriott", "delta", "expedia"),
}

QUOTE_FIELDS = ("price", "change_pct", "volume", "market_cap", "pe_ratio", "dividend_yield")


def _currency(code: str, name: str) -> str:
    if not isinstance(code, str) or code.upper() not in USD_RATES:
        raise ValueError(f"{name}: unsupported currency {code!r}; supported: {', '.join(sorted(USD_RATES))}")
    return code.upper()


def convert_amount(amount: float, from_currency: str, to_currency: str, fee_pct: float = 0) -> dict[str, Any]:
    """Convert money between currencies using a fixed reference rate table and an optional fee."""
    number_in_range(amount, 0, 1e12, "amount")
    src, dst = _currency(from_currency, "from_currency"), _currency(to_currency, "to_currency")
    fee = number_in_range(fee_pct, 0, 10, "fee_pct")
    rate = USD_RATES[dst] / USD_RATES[src]
    gross = amount * rate
    fee_amount = gross * fee / 100
    digits = 0 if dst in ZERO_DECIMAL else 2
    return {
        "amount": amount, "from_currency": src, "to_currency": dst, "rate": round(rate, 6),
        "converted": round(gross - fee_amount, digits), "fee": round(fee_amount, digits),
        "rate_source": "fixed reference table (not live)",
    }


def payment_schedule(
    principal: float,
    annual_rate_pct: float,
    term_months: int,
    extra_monthly_payment: float = 0,
    include_schedule: bool = False,
) -> dict[str, Any]:
    """Compute the fixed monthly payment of an amortising loan and its payoff with optional extra payments."""
    principal = number_in_range(principal, 100, 1e9, "principal")
    annual = number_in_range(annual_rate_pct, 0, 40, "annual_rate_pct")
    int_in_range(term_months, 1, 480, "term_months")
    extra = number_in_range(extra_monthly_payment, 0, 1e7, "extra_monthly_payment")
    r = annual / 100 / 12
    payment = principal / term_months if r == 0 else principal * r / (1 - (1 + r) ** -term_months)
    balance, month, total_interest, rows = principal, 0, 0.0, []
    while balance > 0.005 and month < term_months:
        month += 1
        interest = balance * r
        principal_part = min(balance, payment + extra - interest)
        balance -= principal_part
        total_interest += interest
        if include_schedule:
            rows.append({"month": month, "payment": round(interest + principal_part, 2),
                         "interest": round(interest, 2), "principal": round(principal_part, 2),
                         "balance": round(max(balance, 0.0), 2)})
    baseline_interest = payment * term_months - principal
    result: dict[str, Any] = {
        "monthly_payment": round(payment, 2),
        "monthly_payment_with_extra": round(payment + extra, 2),
        "payoff_months": month,
        "total_interest": round(total_interest, 2),
        "total_paid": round(principal + total_interest, 2),
        "interest_saved_by_extra": round(baseline_interest - total_interest, 2),
    }
    if include_schedule:
        result["schedule"] = rows
    return result


def compound_growth_projection(
    initial_deposit: float,
    annual_return_pct: float,
    years: int,
    monthly_contribution: float = 0,
    compounding: str = "monthly",
) -> dict[str, Any]:
    """Project the future value of savings with regular monthly contributions."""
    balance = number_in_range(initial_deposit, 0, 1e10, "initial_deposit")
    rate = number_in_range(annual_return_pct, -20, 30, "annual_return_pct") / 100
    int_in_range(years, 1, 60, "years")
    contribution = number_in_range(monthly_contribution, 0, 1e7, "monthly_contribution")
    periods = {"monthly": 12, "quarterly": 4, "annually": 1}[one_of(compounding, ("monthly", "quarterly", "annually"),
                                                                     "compounding")]
    months_per_period = 12 // periods
    period_rate = rate / periods
    contributed, yearly = balance, []
    pending = 0.0
    for month in range(1, years * 12 + 1):
        pending += contribution
        contributed += contribution
        if month % months_per_period == 0:
            balance = balance * (1 + period_rate) + pending
            pending = 0.0
        if month % 12 == 0:
            yearly.append({"year": month // 12, "balance": round(balance + pending, 2)})
    final = balance + pending
    return {"final_balance": round(final, 2), "total_contributed": round(contributed, 2),
            "total_growth": round(final - contributed, 2), "compounding": compounding, "by_year": yearly}


def rebalance_plan(
    current: dict[str, float], target: dict[str, float], drift_threshold_pct: float = 5
) -> dict[str, Any]:
    """Compute the trades that bring a stocks/bonds/cash portfolio back to its target weights."""
    have = current if isinstance(current, dict) else {}
    want = target if isinstance(target, dict) else {}
    values = {k: number_in_range(have.get(k), 0, 1e12, f"current.{k}") for k in ("stocks", "bonds", "cash")}
    weights = {k: number_in_range(want.get(f"{k}_pct"), 0, 100, f"target.{k}_pct") for k in ("stocks", "bonds", "cash")}
    if abs(sum(weights.values()) - 100) > 0.01:
        raise ValueError(f"target percentages must add up to 100, got {sum(weights.values())}")
    threshold = number_in_range(drift_threshold_pct, 0, 50, "drift_threshold_pct")
    total = sum(values.values())
    if total <= 0:
        raise ValueError("current portfolio value must be positive")
    rows, needs = [], False
    for k in ("stocks", "bonds", "cash"):
        now_pct = values[k] / total * 100
        drift = now_pct - weights[k]
        needs = needs or abs(drift) > threshold
        rows.append({"asset_class": k, "current_value": round(values[k], 2), "current_pct": round(now_pct, 2),
                     "target_pct": weights[k], "drift_pct": round(drift, 2),
                     "trade": round(total * weights[k] / 100 - values[k], 2)})
    return {"total_value": round(total, 2), "rebalance_needed": needs, "drift_threshold_pct": threshold,
            "positions": rows,
            "summary": [f"{'buy' if r['trade'] > 0 else 'sell'} {abs(r['trade']):.2f} of {r['asset_class']}"
                        for r in rows if needs and abs(r["trade"]) >= 0.01]}


def get_quotes(symbols: list[str], fields: list[str] | None = None) -> dict[str, Any]:
    """Return deterministic sample delayed quotes for stock tickers."""
    if not isinstance(symbols, list) or not symbols or len(symbols) > 20:
        raise ValueError("symbols must be a list of 1 to 20 ticker symbols")
    wanted = list(fields or QUOTE_FIELDS)
    for f in wanted:
        one_of(f, QUOTE_FIELDS, "fields item")
    quotes = []
    for symbol in symbols:
        if not isinstance(symbol, str) or not re.fullmatch(r"[A-Z]{1,5}([.-][A-Z])?", symbol.upper()):
            raise ValueError(f"invalid ticker symbol {symbol!r}")
        rng = seeded_rng("quote", symbol.upper())
        price = round(rng.uniform(8, 900), 2)
        shares = rng.uniform(2e8, 1.6e10)
        full = {
            "price": price,
            "change_pct": round(rng.gauss(0, 1.6), 2),
            "volume": rng.randint(300_000, 90_000_000),
            "market_cap": round(price * shares),
            "pe_ratio": round(rng.uniform(8, 65), 1),
            "dividend_yield": round(max(0.0, rng.uniform(-1.0, 4.0)), 2),
        }
        quotes.append({"symbol": symbol.upper(), "currency": "USD", **{f: full[f] for f in wanted}})
    return {"quotes": quotes, "delayed_minutes": 15, "source": "deterministic sample data"}


def categorize_transactions(transactions: list[dict[str, Any]], currency: str = "USD") -> dict[str, Any]:
    """Assign spending categories to transactions by merchant keywords and total them."""
    if not isinstance(transactions, list) or not transactions:
        raise ValueError("transactions must be a non-empty list of {description, amount} objects")
    cur = _currency(currency, "currency")
    rows, totals = [], {}
    for i, tx in enumerate(transactions):
        item = tx if isinstance(tx, dict) else {}
        desc = item.get("description")
        if not isinstance(desc, str) or not desc.strip():
            raise ValueError(f"transactions[{i}].description is required")
        amount = number_in_range(item.get("amount"), -1e9, 1e9, f"transactions[{i}].amount")
        text = f" {desc.lower()} "
        category = next((c for c, words in CATEGORY_KEYWORDS.items() if any(w in text for w in words)), "other")
        rows.append({"description": desc, "amount": amount, "category": category})
        totals[category] = round(totals.get(category, 0.0) + amount, 2)
    return {"currency": cur, "transactions": rows, "totals_by_category": dict(sorted(totals.items())),
            "total": round(sum(r["amount"] for r in rows), 2)}


def estimate_federal_income_tax(
    annual_income: float, filing_status: str, itemized_deductions: float = 0, tax_year: int = 2025
) -> dict[str, Any]:
    """Estimate US federal income tax on ordinary income with the year's brackets and standard deduction."""
    income = number_in_range(annual_income, 0, 1e10, "annual_income")
    one_of(filing_status, ("single", "married_joint", "married_separate", "head_of_household"), "filing_status")
    itemized = number_in_range(itemized_deductions, 0, 1e10, "itemized_deductions")
    one_of(tax_year, (2024, 2025), "tax_year")
    standard = STANDARD_DEDUCTION[tax_year][filing_status]
    deduction = max(standard, itemized)
    taxable = max(0.0, income - deduction)
    tax, lower, rows = 0.0, 0.0, []
    for rate, upper in zip(RATES, (*BRACKETS[tax_year][filing_status], float("inf")), strict=True):
        portion = max(0.0, min(taxable, upper) - lower)
        if portion > 0:
            rows.append({"rate_pct": round(rate * 100), "taxed_amount": round(portion, 2),
                         "tax": round(portion * rate, 2)})
        tax += portion * rate
        lower = upper
        if taxable <= upper:
            break
    marginal = rows[-1]["rate_pct"] if rows else 0
    return {
        "tax_year": tax_year, "filing_status": filing_status, "gross_income": income,
        "deduction_used": "itemized" if itemized > standard else "standard", "deduction": deduction,
        "taxable_income": round(taxable, 2), "federal_tax": round(tax, 2), "marginal_rate_pct": marginal,
        "effective_rate_pct": round(tax / income * 100, 2) if income else 0.0, "brackets": rows,
        "note": "ordinary income only; ignores credits, capital gains and other taxes",
    }


def report_lost_or_stolen(
    card_last4: str, reason: str, reissue: bool = True, expedited_shipping: bool = False
) -> dict[str, Any]:
    """Freeze a payment card and return a deterministic case reference."""
    if not isinstance(card_last4, str) or not re.fullmatch(r"\d{4}", card_last4):
        raise ValueError(f"card_last4 must be exactly four digits, got {card_last4!r}")
    one_of(reason, ("lost", "stolen", "damaged"), "reason")
    ref = hashlib.sha256(f"{card_last4}|{reason}".encode()).hexdigest()[:10].upper()
    return {
        "case_id": f"CASE-{ref}", "card_last4": card_last4, "card_status": "blocked" if reason != "damaged" else
        "active_until_replacement", "reason": reason, "replacement_ordered": reissue,
        "delivery_business_days": (2 if expedited_shipping else 7) if reissue else None,
        "expedited": bool(expedited_shipping and reissue), "fraud_review_opened": reason == "stolen",
    }


def _add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise ValueError("invalid date arithmetic")


def schedule_payment(
    from_account: str,
    payee: str,
    amount: float,
    send_on: str,
    frequency: str = "once",
    memo: str = "",
) -> dict[str, Any]:
    """Schedule a one-off or recurring bank payment and list its first occurrences."""
    if not isinstance(from_account, str) or not re.fullmatch(r"(CHK|SAV)-\d{4}", from_account):
        raise ValueError(f"from_account must look like CHK-4821 or SAV-1907, got {from_account!r}")
    if not isinstance(payee, str) or not payee.strip():
        raise ValueError("payee must be a non-empty name")
    number_in_range(amount, 0.01, 1e7, "amount")
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", send_on):
            raise ValueError(send_on)
        first = dt.date.fromisoformat(send_on)
    except (TypeError, ValueError):
        raise ValueError(f"send_on must be a date in YYYY-MM-DD form, got {send_on!r}") from None
    one_of(frequency, ("once", "weekly", "biweekly", "monthly"), "frequency")
    if len(memo) > 140:
        raise ValueError("memo must be at most 140 characters")
    if frequency == "once":
        dates = [first]
    elif frequency == "monthly":
        dates = [_add_months(first, i) for i in range(3)]
    else:
        step = 7 if frequency == "weekly" else 14
        dates = [first + dt.timedelta(days=step * i) for i in range(3)]
    pid = hashlib.sha256(json.dumps([from_account, payee, amount, send_on, frequency]).encode()).hexdigest()[:8]
    return {"payment_id": f"PMT-{pid.upper()}", "from_account": from_account, "payee": payee.strip(),
            "amount": round(float(amount), 2), "frequency": frequency, "memo": memo,
            "next_dates": [d.isoformat() for d in dates], "status": "scheduled"}
