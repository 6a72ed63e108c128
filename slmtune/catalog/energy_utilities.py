"""Implementations of the energy_utilities catalog tools (deterministic, side-effect free)."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta
from typing import Any

from slmtune.catalog.common import seeded_rng

# Joules per unit.
_JOULES = {"kWh": 3.6e6, "MWh": 3.6e9, "J": 1.0, "MJ": 1e6, "GJ": 1e9, "BTU": 1055.05585, "MMBtu": 1.05505585e9,
           "therm": 1.054804e8, "kcal": 4184.0, "toe": 4.1868e10}
# kg CO2 per unit of fuel (electricity: US grid average per kWh; gas per therm; liquids per US gallon).
_EMISSION_FACTORS = {"electricity_us_avg": (0.367, "kWh"), "natural_gas": (5.3, "therm"),
                     "heating_oil": (10.21, "gallon"), "propane": (5.72, "gallon"), "gasoline": (8.887, "gallon"),
                     "diesel": (10.18, "gallon")}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MAX_POINTS = 2000


def estimate_solar_production(system_size_kw: float, latitude: float, tilt_degrees: float = 20.0,
                              azimuth_degrees: float = 180.0, losses_percent: float = 14.0) -> dict[str, Any]:
    """Estimate monthly and annual PV output with a simplified latitude-based irradiance model."""
    if not 0.1 <= system_size_kw <= 10000:
        raise ValueError("system_size_kw must be between 0.1 and 10000")
    if not -66 <= latitude <= 66:
        raise ValueError("latitude must be between -66 and 66 degrees")
    if not 0 <= tilt_degrees <= 90:
        raise ValueError("tilt_degrees must be between 0 and 90")
    if not 0 <= azimuth_degrees <= 360:
        raise ValueError("azimuth_degrees must be between 0 and 360")
    if not 0 <= losses_percent <= 50:
        raise ValueError("losses_percent must be between 0 and 50")
    abs_lat = abs(latitude)
    peak_sun_hours = max(2.0, 6.2 - 0.045 * abs_lat)
    equator_azimuth = 180.0 if latitude >= 0 else 0.0
    deviation = abs((azimuth_degrees - equator_azimuth + 180) % 360 - 180)
    az_factor = 1 - (1 - math.cos(math.radians(deviation))) * 0.5 * math.sin(math.radians(tilt_degrees))
    tilt_factor = max(0.5, 1 - 0.00012 * (tilt_degrees - 0.76 * abs_lat) ** 2)
    annual = system_size_kw * peak_sun_hours * 365 * (1 - losses_percent / 100) * tilt_factor * az_factor
    amplitude = min(0.6, abs_lat / 90)
    peak_month = 6 if latitude >= 0 else 12
    weights = [1 + amplitude * math.cos(2 * math.pi * (m - peak_month) / 12) for m in range(1, 13)]
    total_w = sum(weights)
    monthly = [{"month": _MONTHS[i], "kwh": round(annual * w / total_w, 1)} for i, w in enumerate(weights)]
    return {
        "annual_kwh": round(annual, 1),
        "specific_yield_kwh_per_kwp": round(annual / system_size_kw, 1),
        "capacity_factor_percent": round(annual / (system_size_kw * 8760) * 100, 2),
        "orientation_factor": round(tilt_factor * az_factor, 3),
        "monthly": monthly,
    }


def compute_tiered_electric_bill(usage_kwh: float,
                                 tier_limits_kwh: tuple[float, ...] | list[float] = (500, 1000),
                                 tier_rates: tuple[float, ...] | list[float] = (0.12, 0.15, 0.20),
                                 fixed_charge: float = 10.0, tax_rate_percent: float = 0.0) -> dict[str, Any]:
    """Compute an electricity bill under a three-tier inclining block tariff."""
    if usage_kwh < 0:
        raise ValueError("usage_kwh must be >= 0")
    limits, rates = list(tier_limits_kwh), list(tier_rates)
    if len(limits) != 2 or len(rates) != 3:
        raise ValueError("give exactly two tier limits and three tier rates")
    if not 0 < limits[0] < limits[1]:
        raise ValueError("tier_limits_kwh must be positive and increasing")
    if any(r < 0 for r in rates):
        raise ValueError("tier_rates must be >= 0")
    if fixed_charge < 0 or not 0 <= tax_rate_percent <= 50:
        raise ValueError("fixed_charge must be >= 0 and tax_rate_percent between 0 and 50")
    bounds = [0.0, *limits, float("inf")]
    tiers = []
    energy = 0.0
    for i, rate in enumerate(rates):
        kwh = float(max(0.0, min(usage_kwh, bounds[i + 1]) - bounds[i]))
        cost = kwh * rate
        energy += cost
        tiers.append({"tier": i + 1, "kwh": round(kwh, 3), "rate": rate, "cost": round(cost, 2)})
    subtotal = energy + fixed_charge
    tax = subtotal * tax_rate_percent / 100
    return {
        "tiers": tiers,
        "energy_charge": round(energy, 2),
        "fixed_charge": round(fixed_charge, 2),
        "tax": round(tax, 2),
        "total": round(subtotal + tax, 2),
        "average_rate_per_kwh": round((subtotal + tax) / usage_kwh, 4) if usage_kwh else None,
    }


def get_meter_readings(meter_id: str, start_date: str, end_date: str, interval: str = "daily") -> dict[str, Any]:
    """Return interval consumption readings of a smart meter."""
    if not re.fullmatch(r"MTR-[0-9]{4}-[0-9]{3}", meter_id):
        raise ValueError(f"meter_id must look like MTR-5518-204, got {meter_id!r}")
    steps = {"15min": timedelta(minutes=15), "hourly": timedelta(hours=1), "daily": timedelta(days=1)}
    if interval not in steps:
        raise ValueError("interval must be 15min, hourly or daily")
    try:
        start, end = date.fromisoformat(start_date), date.fromisoformat(end_date)
    except (TypeError, ValueError) as exc:
        raise ValueError("start_date and end_date must be YYYY-MM-DD") from exc
    if end < start:
        raise ValueError("end_date must not be before start_date")
    rng = seeded_rng("meter", meter_id)
    daily_base = rng.uniform(12, 45)
    step = steps[interval]
    t = datetime(start.year, start.month, start.day)
    stop = datetime(end.year, end.month, end.day) + timedelta(days=1)
    readings = []
    total = 0.0
    while t < stop and len(readings) < _MAX_POINTS:
        hours = step.total_seconds() / 3600
        profile = 1 + 0.6 * math.sin(2 * math.pi * (t.hour - 7) / 24) if interval != "daily" else 1.0
        season = 1 + 0.25 * math.cos(2 * math.pi * (t.timetuple().tm_yday - 15) / 365)
        noise = seeded_rng("r", meter_id, t.isoformat()).uniform(0.85, 1.15)
        kwh = daily_base / 24 * hours * profile * season * noise
        total += kwh
        readings.append({"start": t.isoformat(), "kwh": round(kwh, 3)})
        t += step
    return {"meter_id": meter_id, "interval": interval, "unit": "kWh", "count": len(readings),
            "truncated": t < stop, "total_kwh": round(total, 2), "readings": readings}


def convert_energy_units(value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
    """Convert an amount of energy between units."""
    for name, unit in (("from_unit", from_unit), ("to_unit", to_unit)):
        if unit not in _JOULES:
            raise ValueError(f"{name} must be one of {list(_JOULES)}")
    result = value * _JOULES[from_unit] / _JOULES[to_unit]
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": float(f"{result:.6g}")}


def size_backup_battery(loads_watts: list[float], backup_hours: float, depth_of_discharge_percent: float = 90.0,
                        inverter_efficiency_percent: float = 95.0, module_kwh: float = 13.5) -> dict[str, Any]:
    """Size a home backup battery bank for a set of loads and a backup duration."""
    if not loads_watts or any(w <= 0 for w in loads_watts):
        raise ValueError("loads_watts must list at least one load, each > 0 W")
    if not 0 < backup_hours <= 168:
        raise ValueError("backup_hours must be greater than 0 and at most 168")
    if not 10 <= depth_of_discharge_percent <= 100:
        raise ValueError("depth_of_discharge_percent must be between 10 and 100")
    if not 50 <= inverter_efficiency_percent <= 100:
        raise ValueError("inverter_efficiency_percent must be between 50 and 100")
    if module_kwh <= 0:
        raise ValueError("module_kwh must be > 0")
    load_w = float(sum(loads_watts))
    energy_kwh = load_w * backup_hours / 1000
    nominal = energy_kwh / (depth_of_discharge_percent / 100) / (inverter_efficiency_percent / 100)
    modules = math.ceil(nominal / module_kwh)
    return {
        "total_load_watts": round(load_w, 1),
        "energy_needed_kwh": round(energy_kwh, 2),
        "nominal_capacity_kwh": round(nominal, 2),
        "modules_needed": modules,
        "installed_capacity_kwh": round(modules * module_kwh, 2),
        "min_inverter_kw": round(load_w * 1.25 / 1000, 2),
    }


def estimate_ev_charging(battery_capacity_kwh: float, start_percent: float, target_percent: float,
                         price_per_kwh: float, charger_kw: float = 7.4,
                         charging_efficiency_percent: float = 90.0) -> dict[str, Any]:
    """Estimate the energy, cost and time to charge an EV between two states of charge."""
    if not 5 <= battery_capacity_kwh <= 250:
        raise ValueError("battery_capacity_kwh must be between 5 and 250")
    if not 0 <= start_percent < target_percent <= 100:
        raise ValueError("start_percent must be below target_percent, both between 0 and 100")
    if price_per_kwh < 0:
        raise ValueError("price_per_kwh must be >= 0")
    if not 1 <= charger_kw <= 350:
        raise ValueError("charger_kw must be between 1 and 350")
    if not 50 <= charging_efficiency_percent <= 100:
        raise ValueError("charging_efficiency_percent must be between 50 and 100")
    eff = charging_efficiency_percent / 100
    stored = battery_capacity_kwh * (target_percent - start_percent) / 100
    grid = stored / eff
    # Above 80 % state of charge the charging power tapers to half.
    below = battery_capacity_kwh * max(0.0, min(target_percent, 80) - start_percent) / 100
    above = stored - below
    hours = below / (charger_kw * eff) + above / (charger_kw * eff * 0.5)
    return {
        "energy_added_kwh": round(stored, 2),
        "energy_from_grid_kwh": round(grid, 2),
        "cost": round(grid * price_per_kwh, 2),
        "charging_time_hours": round(hours, 2),
        "charging_time": f"{round(hours * 60) // 60}h {round(hours * 60) % 60:02d}m",
    }


def estimate_energy_emissions(fuel: str, amount: float) -> dict[str, Any]:
    """Estimate CO2 emissions from energy use with fixed emission factors."""
    if fuel not in _EMISSION_FACTORS:
        raise ValueError(f"fuel must be one of {sorted(_EMISSION_FACTORS)}")
    if amount < 0:
        raise ValueError("amount must be >= 0")
    factor, unit = _EMISSION_FACTORS[fuel]
    kg = amount * factor
    return {
        "fuel": fuel,
        "amount": amount,
        "unit": unit,
        "kg_co2_per_unit": factor,
        "kg_co2": round(kg, 2),
        "metric_tons_co2": round(kg / 1000, 4),
        "equivalent_trees_per_year": round(kg / 21.77, 1),
    }
