"""Fleet and logistics tools: maintenance, vehicle tracking, LTL freight quotes, fuel cost, manifests, hours of
service, pallet loading and driver assignment."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from typing import Any

from slmtune.catalog.common import int_in_range, number_in_range, one_of, parse_date, seeded_rng
from slmtune.catalog.maps_navigation import CITIES, haversine_km

VEHICLE_RE = re.compile(r"(TRK|VAN|REEF|BOX)-\d{4}")
DRIVER_RE = re.compile(r"DRV-\d{4}")
# service -> (interval km, labour hours)
SERVICES: dict[str, tuple[int, float]] = {
    "oil_change": (25000, 1.5), "tire_rotation": (20000, 1.0), "brake_inspection": (40000, 2.0),
    "annual_dot_inspection": (0, 3.0), "transmission_service": (160000, 4.0), "reefer_unit_service": (0, 2.5),
}
FREIGHT_CLASSES = ("50", "55", "60", "65", "70", "77.5", "85", "92.5", "100", "110", "125", "150", "175", "200", "250",
                   "300", "400", "500")
CARRIERS = ("ups", "fedex", "dhl", "usps", "xpo")
PALLETS = {"us_standard": (121.9, 101.6, 14.4), "eur": (120.0, 80.0, 14.4)}   # length cm, width cm, height cm


def _vehicle(value: str) -> str:
    if not isinstance(value, str) or not VEHICLE_RE.fullmatch(value):
        raise ValueError(f"vehicle_id must look like TRK-1042 (TRK, VAN, REEF or BOX), got {value!r}")
    return value




def _datetime(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"{name} must be an RFC 3339 date-time such as 2025-03-10T06:00:00-06:00, "
                         f"got {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name} must include a UTC offset, got {value!r}")
    return parsed


def _city(name: str, param: str) -> tuple[str, tuple[float, float, str]]:
    for key, value in CITIES.items():
        if isinstance(name, str) and key.lower() == name.strip().lower():
            return key, value
    raise ValueError(f"{param}: unknown city {name!r}; known cities: {', '.join(sorted(CITIES))}")


def schedule_maintenance(
    vehicle_id: str, service_type: str, date: str, odometer_km: int, priority: str = "routine", notes: str = ""
) -> dict[str, Any]:
    """Open a maintenance work order for a vehicle and compute when the service is next due."""
    _vehicle(vehicle_id)
    interval_km, labour = SERVICES[one_of(service_type, tuple(SERVICES), "service_type")]
    day = parse_date(date, "date")
    int_in_range(odometer_km, 0, 3_000_000, "odometer_km")
    one_of(priority, ("routine", "urgent"), "priority")
    order = hashlib.sha256(json.dumps([vehicle_id, service_type, date]).encode()).hexdigest()[:6].upper()
    bay = seeded_rng("bay", vehicle_id, date).randint(1, 8)
    return {"work_order": f"WO-{order}", "vehicle_id": vehicle_id, "service_type": service_type,
            "date": day.isoformat(), "bay": bay, "priority": priority, "estimated_labour_hours": labour,
            "vehicle_out_of_service_hours": labour + (0 if priority == "urgent" else 1),
            "next_due_odometer_km": odometer_km + interval_km if interval_km else None,
            "next_due_date": (day + dt.timedelta(days=365)).isoformat() if not interval_km else None,
            "notes": notes}


def vehicle_location(vehicle_id: str, include_recent_stops: bool = False) -> dict[str, Any]:
    """Return a deterministic sample GPS position and status for a fleet vehicle."""
    _vehicle(vehicle_id)
    rng = seeded_rng("gps", vehicle_id)
    near = rng.choice([c for c, v in CITIES.items() if v[2] == "north_america"])
    lat, lon, _ = CITIES[near]
    moving = rng.random() < 0.6
    result: dict[str, Any] = {
        "vehicle_id": vehicle_id, "latitude": round(lat + rng.uniform(-0.3, 0.3), 5),
        "longitude": round(lon + rng.uniform(-0.3, 0.3), 5), "near_city": near,
        "status": "moving" if moving else rng.choice(["idle", "parked", "loading"]),
        "speed_kmh": round(rng.uniform(55, 105), 1) if moving else 0.0, "heading_deg": rng.randint(0, 359),
        "fuel_pct": rng.randint(8, 100), "engine_hours": rng.randint(1200, 25000),
    }
    if include_recent_stops:
        others = sorted((c for c, v in CITIES.items() if v[2] == "north_america" and c != near),
                        key=lambda c: haversine_km(lat, lon, CITIES[c][0], CITIES[c][1]))
        result["recent_stops"] = [{"city": c, "dwell_minutes": rng.randint(10, 180)} for c in others[:3]]
    return result


def quote_ltl(
    origin_city: str,
    destination_city: str,
    weight_lb: float,
    freight_class: str,
    pallets: int = 1,
    liftgate: bool = False,
    residential_delivery: bool = False,
) -> dict[str, Any]:
    """Quote a less-than-truckload shipment from distance, weight, NMFC class and accessorials."""
    o_name, o = _city(origin_city, "origin_city")
    d_name, d = _city(destination_city, "destination_city")
    if o_name == d_name:
        raise ValueError("origin_city and destination_city must differ")
    if o[2] != d[2]:
        raise ValueError("LTL freight needs an overland route between the two cities")
    weight = number_in_range(weight_lb, 100, 20000, "weight_lb")
    one_of(freight_class, FREIGHT_CLASSES, "freight_class")
    int_in_range(pallets, 1, 26, "pallets")
    miles = haversine_km(o[0], o[1], d[0], d[1]) * 1.2 / 1.609344
    class_factor = (float(freight_class) / 100) ** 0.65
    per_cwt = (18 + 0.055 * miles) * class_factor
    weight_break = 0.78 if weight >= 5000 else 0.88 if weight >= 2000 else 1.0
    linehaul = max(185.0, per_cwt * weight / 100 * weight_break)
    fuel = linehaul * 0.28
    accessorials = {"liftgate": 95.0 if liftgate else 0.0, "residential_delivery": 120.0 if residential_delivery
                    else 0.0}
    total = linehaul + fuel + sum(accessorials.values())
    transit = max(1, math.ceil(miles / 450))
    return {"origin_city": o_name, "destination_city": d_name, "miles": round(miles), "weight_lb": weight,
            "freight_class": freight_class, "pallets": pallets, "linehaul": round(linehaul, 2),
            "fuel_surcharge": round(fuel, 2), "accessorials": accessorials, "total": round(total, 2),
            "currency": "USD", "transit_business_days": transit}


def trip_fuel_cost(
    distance_km: float,
    fuel_economy_l_per_100km: float,
    fuel_price_per_liter: float,
    vehicles: int = 1,
    round_trip: bool = False,
) -> dict[str, Any]:
    """Compute fuel volume and cost of a trip for one or more vehicles."""
    dist = number_in_range(distance_km, 0.1, 20000, "distance_km") * (2 if round_trip else 1)
    economy = number_in_range(fuel_economy_l_per_100km, 2, 60, "fuel_economy_l_per_100km")
    price = number_in_range(fuel_price_per_liter, 0.2, 5, "fuel_price_per_liter")
    int_in_range(vehicles, 1, 100, "vehicles")
    litres = dist * economy / 100
    return {"distance_km": round(dist, 1), "litres_per_vehicle": round(litres, 1),
            "cost_per_vehicle": round(litres * price, 2), "vehicles": vehicles,
            "total_litres": round(litres * vehicles, 1), "total_cost": round(litres * price * vehicles, 2),
            "cost_per_km": round(economy / 100 * price, 3), "co2_kg": round(litres * vehicles * 2.68, 1)}


def create_manifest(
    carrier: str, pickup_date: str, packages: list[dict[str, Any]], service_level: str = "ground"
) -> dict[str, Any]:
    """Create a carrier pickup manifest for a list of packages and total its weight."""
    one_of(carrier, CARRIERS, "carrier")
    day = parse_date(pickup_date, "pickup_date")
    one_of(service_level, ("ground", "express", "freight"), "service_level")
    if not isinstance(packages, list) or not packages:
        raise ValueError("packages must be a non-empty list of {tracking_number, weight_kg} objects")
    seen, rows = set(), []
    for i, pkg in enumerate(packages):
        entry = pkg if isinstance(pkg, dict) else {}
        tracking = entry.get("tracking_number")
        if not isinstance(tracking, str) or not re.fullmatch(r"[A-Z0-9]{8,22}", tracking):
            raise ValueError(f"packages[{i}].tracking_number must be 8-22 capital letters or digits")
        if tracking in seen:
            raise ValueError(f"duplicate tracking number {tracking}")
        seen.add(tracking)
        weight = number_in_range(entry.get("weight_kg"), 0.01, 1000, f"packages[{i}].weight_kg")
        rows.append({"tracking_number": tracking, "weight_kg": weight})
    total = sum(r["weight_kg"] for r in rows)
    manifest = hashlib.sha256(json.dumps([carrier, pickup_date, sorted(seen)]).encode()).hexdigest()[:8].upper()
    return {"manifest_id": f"MAN-{manifest}", "carrier": carrier, "pickup_date": day.isoformat(),
            "service_level": service_level, "package_count": len(rows), "total_weight_kg": round(total, 2),
            "heaviest_kg": max(r["weight_kg"] for r in rows), "requires_freight_pickup": total > 68 or
            service_level == "freight", "packages": rows}


def hos_compliance_check(
    driving_hours_today: float,
    on_duty_hours_today: float,
    cycle_hours_used: float,
    driving_hours_since_break: float,
    cycle: str = "70_8",
) -> dict[str, Any]:
    """Check FMCSA property-carrier hours-of-service limits and the driving time left."""
    drive = number_in_range(driving_hours_today, 0, 24, "driving_hours_today")
    duty = number_in_range(on_duty_hours_today, 0, 24, "on_duty_hours_today")
    used = number_in_range(cycle_hours_used, 0, 100, "cycle_hours_used")
    since_break = number_in_range(driving_hours_since_break, 0, 24, "driving_hours_since_break")
    limit = {"60_7": 60.0, "70_8": 70.0}[one_of(cycle, ("60_7", "70_8"), "cycle")]
    if drive > duty:
        raise ValueError("driving_hours_today cannot exceed on_duty_hours_today")
    if since_break > drive:
        raise ValueError("driving_hours_since_break cannot exceed driving_hours_today")
    remaining = {"11_hour_driving": 11 - drive, "14_hour_window": 14 - duty, "cycle": limit - used,
                 "30_minute_break": 8 - since_break}
    binding = min(remaining, key=lambda k: remaining[k])
    violations = [k for k, v in remaining.items() if v < 0]
    return {"compliant": not violations, "violations": violations,
            "remaining_hours": {k: round(max(0.0, v), 2) for k, v in remaining.items()},
            "can_drive_hours": round(max(0.0, min(remaining.values())), 2), "binding_limit": binding,
            "break_required_now": remaining["30_minute_break"] <= 0,
            "needs_34_hour_restart": remaining["cycle"] <= 0}


def pallet_load_plan(
    box: dict[str, float], pallet: str = "us_standard", max_stack_height_cm: int = 180, max_load_kg: int = 1000
) -> dict[str, Any]:
    """Compute how many identical boxes fit on a pallet by footprint, stack height and weight limit."""
    dims = box if isinstance(box, dict) else {}
    length, width, height = (number_in_range(dims.get(k), 1, 250, f"box.{k}") for k in ("length_cm", "width_cm",
                                                                               "height_cm"))
    weight = number_in_range(dims.get("weight_kg"), 0.01, 2000, "box.weight_kg")
    p_len, p_wid, p_h = PALLETS[one_of(pallet, tuple(PALLETS), "pallet")]
    int_in_range(max_stack_height_cm, 50, 250, "max_stack_height_cm")
    int_in_range(max_load_kg, 100, 2000, "max_load_kg")
    per_layer_options = {
        "lengthwise": int(p_len // length) * int(p_wid // width),
        "crosswise": int(p_len // width) * int(p_wid // length),
    }
    orientation = max(per_layer_options, key=lambda k: per_layer_options[k])
    per_layer = per_layer_options[orientation]
    if per_layer == 0:
        raise ValueError("the box footprint is larger than the pallet")
    layers = int((max_stack_height_cm - p_h) // height)
    if layers < 1:
        raise ValueError("the box is taller than the allowed stack height")
    by_space = per_layer * layers
    by_weight = int(max_load_kg // weight)
    count = min(by_space, by_weight)
    used_layers = math.ceil(count / per_layer) if count else 0
    return {"pallet": pallet, "orientation": orientation, "boxes_per_layer": per_layer, "layers": used_layers,
            "boxes": count, "limited_by": "weight" if by_weight < by_space else "height",
            "load_kg": round(count * weight, 2), "stack_height_cm": round(p_h + used_layers * height, 1),
            "footprint_utilisation_pct": round(per_layer * length * width / (p_len * p_wid) * 100, 1)}


def assign_driver(
    vehicle_id: str, driver_id: str, shift_start: str, shift_end: str, notify_driver: bool = True
) -> dict[str, Any]:
    """Assign a driver to a vehicle for a shift of at most 14 hours."""
    _vehicle(vehicle_id)
    if not isinstance(driver_id, str) or not DRIVER_RE.fullmatch(driver_id):
        raise ValueError(f"driver_id must look like DRV-3381, got {driver_id!r}")
    start, end = _datetime(shift_start, "shift_start"), _datetime(shift_end, "shift_end")
    hours = (end - start).total_seconds() / 3600
    if hours <= 0:
        raise ValueError("shift_end must be after shift_start")
    if hours > 14:
        raise ValueError("a shift may not exceed the 14-hour on-duty window")
    ref = hashlib.sha256(json.dumps([vehicle_id, driver_id, shift_start]).encode()).hexdigest()[:6].upper()
    return {"assignment_id": f"ASG-{ref}", "vehicle_id": vehicle_id, "driver_id": driver_id,
            "shift_start": start.isoformat(), "shift_end": end.isoformat(), "shift_hours": round(hours, 2),
            "max_driving_hours": min(11.0, round(hours, 2)), "driver_notified": notify_driver}
