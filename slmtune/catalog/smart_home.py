"""Smart-home tools: thermostat, lights, locks, automations, energy use, appliance scheduling, security, irrigation
and quiet hours (simulated devices; results are deterministic)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from slmtune.catalog.common import int_in_range, number_in_range, one_of, seeded_rng

ZONES = ("downstairs", "upstairs", "basement", "office", "nursery")
LOCKS = ("front_door", "back_door", "garage", "side_gate")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# appliance -> program -> (kWh per run, run minutes)
APPLIANCES: dict[str, dict[str, tuple[float, int]]] = {
    "dishwasher": {"eco": (0.75, 220), "normal": (1.1, 140), "intensive": (1.6, 160)},
    "washing_machine": {"eco": (0.55, 210), "normal": (0.9, 120), "intensive": (1.5, 150)},
    "dryer": {"eco": (2.2, 180), "normal": (3.0, 110), "intensive": (3.6, 130)},
    "ev_charger": {"eco": (11.0, 300), "normal": (22.0, 330), "intensive": (33.0, 300)},
    "water_heater": {"eco": (2.0, 120), "normal": (3.0, 90), "intensive": (4.5, 120)},
}
# time-of-use tariff per kWh by local hour
TARIFF = [0.12] * 7 + [0.24] * 9 + [0.38] * 5 + [0.24] * 3
# zone -> litres per minute
IRRIGATION_FLOW = {1: 9.5, 2: 9.5, 3: 6.0, 4: 6.0, 5: 12.0, 6: 12.0, 7: 4.0, 8: 4.0, 9: 8.0, 10: 8.0, 11: 3.0, 12: 3.0}


def _text(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value.strip()


def set_thermostat(zone: str, setpoint: dict[str, Any], mode: str = "auto", hold_hours: int = 0) -> dict[str, Any]:
    """Set a thermostat zone's target temperature and mode."""
    one_of(zone, ZONES, "zone")
    target = setpoint if isinstance(setpoint, dict) else {}
    unit = one_of(target.get("unit"), ("celsius", "fahrenheit"), "setpoint.unit")
    value = number_in_range(target.get("value"), 5, 32, "setpoint.value") if unit == "celsius" else number_in_range(
        target.get("value"), 41, 90, "setpoint.value")
    one_of(mode, ("heat", "cool", "auto", "eco", "off"), "mode")
    int_in_range(hold_hours, 0, 72, "hold_hours")
    celsius = value if unit == "celsius" else (value - 32) * 5 / 9
    current = round(seeded_rng("indoor", zone).uniform(17, 25), 1)
    if mode == "off" or abs(current - celsius) < 0.5:
        action = "idle"
    else:
        action = "heating" if celsius > current else "cooling"
    if (action == "heating" and mode == "cool") or (action == "cooling" and mode == "heat"):
        action = "idle"
    return {"zone": zone, "target": {"value": value, "unit": unit}, "target_celsius": round(celsius, 1),
            "current_celsius": current, "mode": mode, "hvac_action": action,
            "hold": f"{hold_hours} h" if hold_hours else "until next scheduled change"}


def set_lights(
    room: str, on: bool = True, brightness_pct: int = 100, color_temp_k: int = 2700, transition_seconds: float = 0.5
) -> dict[str, Any]:
    """Switch the lights of a room and set brightness and colour temperature."""
    room = _text(room, "room")
    int_in_range(brightness_pct, 0, 100, "brightness_pct")
    int_in_range(color_temp_k, 2200, 6500, "color_temp_k")
    number_in_range(transition_seconds, 0, 60, "transition_seconds")
    bulbs = seeded_rng("bulbs", room.lower()).randint(1, 6)
    lit = on and brightness_pct > 0
    tone = "warm" if color_temp_k < 3300 else "neutral" if color_temp_k < 5000 else "cool daylight"
    return {"room": room, "bulbs": bulbs, "on": lit, "brightness_pct": brightness_pct if lit else 0,
            "color_temp_k": color_temp_k, "tone": tone, "transition_seconds": transition_seconds,
            "estimated_watts": round(bulbs * 9 * (brightness_pct / 100) if lit else 0.0, 1)}


def lock_control(lock: str, action: str, auto_relock_minutes: int = 0) -> dict[str, Any]:
    """Lock or unlock a smart lock, optionally re-locking automatically."""
    one_of(lock, LOCKS, "lock")
    one_of(action, ("lock", "unlock"), "action")
    int_in_range(auto_relock_minutes, 0, 120, "auto_relock_minutes")
    battery = seeded_rng("battery", lock).randint(18, 100)
    return {"lock": lock, "state": "locked" if action == "lock" else "unlocked",
            "auto_relock_in_minutes": auto_relock_minutes if action == "unlock" and auto_relock_minutes else None,
            "battery_pct": battery, "low_battery_warning": battery < 25}


def create_automation(
    name: str, trigger: dict[str, str], action: dict[str, str], enabled: bool = True, only_when_away: bool = False
) -> dict[str, Any]:
    """Create an if-this-then-that rule linking a device event to a device command."""
    name = _text(name, "name")
    when = trigger if isinstance(trigger, dict) else {}
    then = action if isinstance(action, dict) else {}
    for obj, label, keys in ((when, "trigger", ("device", "state")), (then, "action", ("device", "command"))):
        for key in keys:
            _text(obj.get(key), f"{label}.{key}")
    if when["device"].strip().lower() == then["device"].strip().lower():
        raise ValueError("trigger and action must use different devices")
    rule_id = hashlib.sha256(json.dumps([name, when, then]).encode()).hexdigest()[:8]
    condition = " and nobody is home" if only_when_away else ""
    return {"automation_id": f"AUTO-{rule_id.upper()}", "name": name, "enabled": enabled,
            "summary": f"When {when['device']} is {when['state']}{condition}, set {then['device']} to "
                       f"{then['command']}.",
            "trigger": when, "action": then, "only_when_away": only_when_away}


def energy_usage(
    period: str, start_date: str, breakdown_by: str = "device", compare_previous: bool = False
) -> dict[str, Any]:
    """Return deterministic sample household electricity use for a day, week or month."""
    one_of(period, ("day", "week", "month"), "period")
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", start_date):
            raise ValueError(start_date)
        start = dt.date.fromisoformat(start_date)
    except (TypeError, ValueError):
        raise ValueError(f"start_date must be a date in YYYY-MM-DD form, got {start_date!r}") from None
    one_of(breakdown_by, ("device", "room", "none"), "breakdown_by")
    days = {"day": 1, "week": 7, "month": 30}[period]

    def total_for(first: dt.date) -> float:
        return sum(seeded_rng("kwh", (first + dt.timedelta(days=i)).isoformat()).uniform(7, 19) for i in range(days))

    total = total_for(start)
    result: dict[str, Any] = {"period": period, "start_date": start.isoformat(),
                              "end_date": (start + dt.timedelta(days=days - 1)).isoformat(),
                              "total_kwh": round(total, 2), "estimated_cost": round(total * 0.21, 2),
                              "currency": "USD"}
    if breakdown_by != "none":
        labels = (["hvac", "water_heater", "fridge", "laundry", "lighting", "electronics"] if breakdown_by == "device"
                  else ["kitchen", "living_room", "bedrooms", "garage", "office"])
        rng = seeded_rng("split", start.isoformat(), breakdown_by)
        weights = [rng.uniform(0.5, 3) for _ in labels]
        result["breakdown_kwh"] = {k: round(total * w / sum(weights), 2) for k, w in zip(labels, weights, strict=True)}
    if compare_previous:
        previous = total_for(start - dt.timedelta(days=days))
        result["previous_period_kwh"] = round(previous, 2)
        result["change_pct"] = round((total - previous) / previous * 100, 1)
    return result


def schedule_appliance(appliance: str, start_at: str, program: str = "normal") -> dict[str, Any]:
    """Schedule an appliance run and price it with a time-of-use tariff, suggesting the cheapest start."""
    programs = APPLIANCES[one_of(appliance, tuple(APPLIANCES), "appliance")]
    kwh, minutes = programs[one_of(program, ("eco", "normal", "intensive"), "program")]
    try:
        text = start_at[:-1] + "+00:00" if start_at.endswith(("Z", "z")) else start_at
        start = dt.datetime.fromisoformat(text)
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"start_at must be an RFC 3339 date-time, got {start_at!r}") from None
    if start.tzinfo is None:
        raise ValueError("start_at must include a UTC offset")

    def cost(begin_minute: int) -> float:
        per_minute = kwh / minutes
        return sum(TARIFF[((begin_minute + m) // 60) % 24] * per_minute for m in range(minutes))

    begin = start.hour * 60 + start.minute
    price = cost(begin)
    best = min(range(0, 24 * 60, 30), key=lambda b: (cost(b), (b - begin) % (24 * 60)))
    best_start = start.replace(hour=best // 60, minute=best % 60, second=0, microsecond=0)
    if best_start < start:
        best_start += dt.timedelta(days=1)
    return {"appliance": appliance, "program": program, "start_at": start.isoformat(),
            "end_at": (start + dt.timedelta(minutes=minutes)).isoformat(), "energy_kwh": kwh,
            "estimated_cost": round(price, 2), "currency": "USD",
            "cheapest_start": best_start.isoformat(), "cheapest_cost": round(cost(best), 2),
            "saving_if_moved": round(price - cost(best), 2)}


def set_arm_mode(
    mode: str, pin_code: str, bypass_zones: list[str] | None = None, exit_delay_seconds: int = 60
) -> dict[str, Any]:
    """Arm or disarm the home security system, optionally bypassing zones."""
    one_of(mode, ("away", "stay", "night", "disarmed"), "mode")
    if not isinstance(pin_code, str) or not re.fullmatch(r"\d{4,6}", pin_code):
        raise ValueError("pin_code must be 4 to 6 digits")
    zones = list(bypass_zones or [])
    for z in zones:
        _text(z, "bypass_zones item")
    int_in_range(exit_delay_seconds, 0, 180, "exit_delay_seconds")
    open_sensors = seeded_rng("open", mode).sample(["back window", "garage door", "patio door", "basement window"], 1)
    blocking = [s for s in open_sensors if s not in zones and mode != "disarmed" and mode != "stay"]
    return {"requested_mode": mode, "state": "not_ready" if blocking else mode,
            "blocking_open_sensors": blocking, "bypassed_zones": zones,
            "exit_delay_seconds": exit_delay_seconds if mode == "away" else 0}


def run_zones(zones: list[int], minutes_per_zone: int, skip_if_rain_expected: bool = True) -> dict[str, Any]:
    """Run sprinkler zones one after another and estimate the water used."""
    if not isinstance(zones, list) or not zones:
        raise ValueError("zones must be a non-empty list of zone numbers 1-12")
    for z in zones:
        int_in_range(z, 1, 12, "zones item")
    if len(set(zones)) != len(zones):
        raise ValueError("zones must not repeat")
    int_in_range(minutes_per_zone, 1, 60, "minutes_per_zone")
    rain = seeded_rng("rain", sorted(zones)).random() < 0.3
    if rain and skip_if_rain_expected:
        return {"status": "skipped", "reason": "rain expected in the next 24 hours", "zones": zones,
                "water_litres": 0.0}
    plan, clock = [], 0
    for z in zones:
        plan.append({"zone": z, "starts_after_minutes": clock, "minutes": minutes_per_zone,
                     "litres": round(IRRIGATION_FLOW[z] * minutes_per_zone, 1)})
        clock += minutes_per_zone + 1
    return {"status": "running", "rain_expected": rain, "sequence": plan, "total_minutes": clock - 1,
            "water_litres": round(sum(p["litres"] for p in plan), 1)}


def set_quiet_hours(
    start_time: str, end_time: str, days: list[str] | None = None, mute_doorbell: bool = False
) -> dict[str, Any]:
    """Set recurring quiet hours during which speakers and notifications are muted."""
    parsed = []
    for name, value in (("start_time", start_time), ("end_time", end_time)):
        try:
            if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value):
                raise ValueError(value)
            parsed.append(dt.time.fromisoformat(value))
        except ValueError:
            raise ValueError(f"{name} must be HH:MM:SS (24-hour), got {value!r}") from None
    begin, end = parsed
    if begin == end:
        raise ValueError("start_time and end_time must differ")
    chosen = list(days or DAYS)
    for d in chosen:
        one_of(d, DAYS, "days item")
    minutes = ((end.hour * 60 + end.minute) - (begin.hour * 60 + begin.minute)) % (24 * 60)
    return {"start_time": begin.isoformat(), "end_time": end.isoformat(), "overnight": end < begin,
            "duration_minutes": minutes, "days": [d for d in DAYS if d in chosen], "mute_doorbell": mute_doorbell}
