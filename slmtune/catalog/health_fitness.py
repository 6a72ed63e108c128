"""Health and fitness tools: BMI, calorie targets, heart-rate zones, workouts, pace, hydration, sleep, reminders.

The formulas are standard public ones (Mifflin-St Jeor, Tanaka, Karvonen, Riegel, MET tables); results are
informational, not medical advice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from typing import Any

from slmtune.catalog.common import int_in_range, number_in_range, one_of, parse_date

ACTIVITY_FACTORS = {"sedentary": 1.2, "light": 1.375, "moderate": 1.55, "active": 1.725, "very_active": 1.9}
GOAL_ADJUST = {"lose": -500, "maintain": 0, "gain": 300}
WORKOUT_METS = {"running": 9.8, "cycling": 7.5, "swimming": 7.0, "walking": 3.5, "rowing": 7.0, "strength": 5.0,
                "yoga": 2.5, "hiit": 8.0}
RACES_KM = {"5K": 5.0, "10K": 10.0, "half_marathon": 21.0975, "marathon": 42.195}
DISCLAIMER = "informational estimate, not medical advice"


def _datetime(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"{name} must be an RFC 3339 date-time such as 2025-03-02T22:45:00-05:00, "
                         f"got {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name} must include a UTC offset, got {value!r}")
    return parsed


def _clock(minutes: float) -> str:
    total = round(minutes * 60)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def bmi_report(weight_kg: float, height_cm: float, asian_cutoffs: bool = False) -> dict[str, Any]:
    """Compute body-mass index, its WHO category and the healthy weight range for the height."""
    w = number_in_range(weight_kg, 20, 350, "weight_kg")
    h = number_in_range(height_cm, 100, 250, "height_cm") / 100
    bmi = w / (h * h)
    bounds = (18.5, 23.0, 27.5) if asian_cutoffs else (18.5, 25.0, 30.0)
    category = ("underweight" if bmi < bounds[0] else "healthy" if bmi < bounds[1] else "overweight"
                if bmi < bounds[2] else "obese")
    return {"bmi": round(bmi, 1), "category": category, "cutoffs": "WHO Asian" if asian_cutoffs else "WHO",
            "healthy_weight_range_kg": [round(bounds[0] * h * h, 1), round(bounds[1] * h * h, 1)],
            "note": DISCLAIMER}


def daily_calorie_target(
    sex: str,
    age: int,
    weight_kg: float,
    height_cm: float,
    activity_level: str = "moderate",
    goal: str = "maintain",
) -> dict[str, Any]:
    """Estimate daily calories with the Mifflin-St Jeor equation, an activity factor and a goal adjustment."""
    one_of(sex, ("male", "female"), "sex")
    int_in_range(age, 15, 100, "age")
    w = number_in_range(weight_kg, 30, 350, "weight_kg")
    h = number_in_range(height_cm, 120, 250, "height_cm")
    factor = ACTIVITY_FACTORS[one_of(activity_level, tuple(ACTIVITY_FACTORS), "activity_level")]
    adjust = GOAL_ADJUST[one_of(goal, tuple(GOAL_ADJUST), "goal")]
    bmr = 10 * w + 6.25 * h - 5 * age + (5 if sex == "male" else -161)
    tdee = bmr * factor
    target = max(1200 if sex == "female" else 1500, tdee + adjust)
    protein_g = round(w * (2.0 if goal == "lose" else 1.6))
    fat_g = round(target * 0.28 / 9)
    carbs_g = max(0, round((target - protein_g * 4 - fat_g * 9) / 4))
    return {"bmr": round(bmr), "maintenance_calories": round(tdee), "target_calories": round(target), "goal": goal,
            "macros_g": {"protein": protein_g, "fat": fat_g, "carbohydrate": carbs_g}, "note": DISCLAIMER}


def heart_rate_training_zones(age: int, resting_hr: int = 60, method: str = "karvonen") -> dict[str, Any]:
    """Compute five heart-rate training zones from age (Tanaka max HR) by percent of max or Karvonen reserve."""
    int_in_range(age, 10, 100, "age")
    int_in_range(resting_hr, 30, 120, "resting_hr")
    one_of(method, ("max_hr", "karvonen"), "method")
    max_hr = 208 - 0.7 * age
    reserve = max_hr - resting_hr
    names = ("recovery", "endurance", "tempo", "threshold", "vo2max")
    zones = []
    for i, name in enumerate(names):
        lo, hi = 0.5 + 0.1 * i, 0.6 + 0.1 * i
        if method == "karvonen":
            low, high = resting_hr + lo * reserve, resting_hr + hi * reserve
        else:
            low, high = lo * max_hr, hi * max_hr
        zones.append({"zone": i + 1, "name": name, "intensity_pct": [round(lo * 100), round(hi * 100)],
                      "bpm": [round(low), round(high)]})
    return {"max_heart_rate": round(max_hr), "resting_hr": resting_hr, "method": method, "zones": zones}


def log_workout(
    activity: str,
    duration_minutes: int,
    date: str,
    distance_km: float = 0,
    avg_heart_rate: int = 0,
    body_weight_kg: float = 70,
    notes: str = "",
) -> dict[str, Any]:
    """Log a workout and estimate the calories burned from MET values."""
    one_of(activity, tuple(WORKOUT_METS), "activity")
    int_in_range(duration_minutes, 1, 600, "duration_minutes")
    day = parse_date(date, "date")
    dist = number_in_range(distance_km, 0, 1000, "distance_km")
    if avg_heart_rate:
        int_in_range(avg_heart_rate, 40, 230, "avg_heart_rate")
    weight = number_in_range(body_weight_kg, 30, 300, "body_weight_kg")
    met = WORKOUT_METS[activity]
    speed = dist / (duration_minutes / 60) if dist else None
    if activity == "running" and speed:
        met = max(6.0, min(19.0, 1.05 * speed))       # ~1 MET per km/h for running
    elif activity == "cycling" and speed:
        met = 4.0 if speed < 16 else 6.8 if speed < 20 else 8.0 if speed < 25 else 10.0
    elif activity == "walking" and speed:
        met = 2.8 if speed < 4.5 else 3.5 if speed < 5.6 else 4.3
    calories = met * weight * duration_minutes / 60
    entry_id = hashlib.sha256(json.dumps([activity, duration_minutes, date, dist]).encode()).hexdigest()[:8]
    result: dict[str, Any] = {"workout_id": f"WO-{entry_id.upper()}", "activity": activity, "date": day.isoformat(),
                              "duration_minutes": duration_minutes, "met": round(met, 1),
                              "calories_burned": round(calories), "notes": notes}
    if dist:
        result["distance_km"] = dist
        result["average_speed_kmh"] = round(speed, 2)
        result["pace_per_km"] = _clock(duration_minutes / dist)
    if avg_heart_rate:
        result["avg_heart_rate"] = avg_heart_rate
    return result


def running_pace_calculator(distance_km: float, duration: dict[str, int]) -> dict[str, Any]:
    """Compute pace and speed for a run and predict race times with Riegel's formula."""
    dist = number_in_range(distance_km, 0.1, 500, "distance_km")
    parts = duration if isinstance(duration, dict) else {}
    hours = int_in_range(parts.get("hours", 0), 0, 99, "duration.hours")
    minutes = int_in_range(parts.get("minutes", 0), 0, 59, "duration.minutes")
    seconds = int_in_range(parts.get("seconds", 0), 0, 59, "duration.seconds")
    total_min = hours * 60 + minutes + seconds / 60
    if total_min <= 0:
        raise ValueError("duration must be longer than zero")
    pace = total_min / dist
    predictions = {name: _clock(total_min * (km / dist) ** 1.06) for name, km in RACES_KM.items()}
    return {"distance_km": dist, "elapsed": _clock(total_min), "pace_per_km": _clock(pace),
            "pace_per_mile": _clock(pace * 1.609344), "speed_kmh": round(dist / (total_min / 60), 2),
            "speed_mph": round(dist / 1.609344 / (total_min / 60), 2), "riegel_predictions": predictions}


def daily_water_goal(
    weight_kg: float, exercise_minutes: int = 0, climate: str = "temperate", pregnant_or_breastfeeding: bool = False
) -> dict[str, Any]:
    """Estimate a daily fluid intake goal from body weight, exercise, climate and pregnancy."""
    w = number_in_range(weight_kg, 20, 300, "weight_kg")
    int_in_range(exercise_minutes, 0, 600, "exercise_minutes")
    bump = {"temperate": 0, "hot": 500, "hot_humid": 750}[one_of(climate, ("temperate", "hot", "hot_humid"),
                                                                     "climate")]
    ml = 35 * w + 12 * exercise_minutes + bump + (400 if pregnant_or_breastfeeding else 0)
    return {"daily_ml": round(ml, -1), "liters": round(ml / 1000, 2), "cups_250ml": math.ceil(ml / 250),
            "breakdown_ml": {"baseline": round(35 * w), "exercise": 12 * exercise_minutes, "climate": bump,
                             "pregnancy": 400 if pregnant_or_breastfeeding else 0}, "note": DISCLAIMER}


def score_night(
    bedtime: str,
    wake_time: str,
    awakenings: int = 0,
    minutes_to_fall_asleep: int = 15,
    minutes_awake_at_night: int = 0,
) -> dict[str, Any]:
    """Compute sleep duration, efficiency and a 0-100 sleep score for one night."""
    start, end = _datetime(bedtime, "bedtime"), _datetime(wake_time, "wake_time")
    in_bed = (end - start).total_seconds() / 60
    if in_bed <= 0:
        raise ValueError("wake_time must be after bedtime")
    if in_bed > 24 * 60:
        raise ValueError("a night cannot be longer than 24 hours")
    int_in_range(awakenings, 0, 30, "awakenings")
    int_in_range(minutes_to_fall_asleep, 0, 180, "minutes_to_fall_asleep")
    int_in_range(minutes_awake_at_night, 0, 300, "minutes_awake_at_night")
    asleep = max(0.0, in_bed - minutes_to_fall_asleep - minutes_awake_at_night)
    efficiency = asleep / in_bed * 100
    duration_score = max(0.0, 50 - abs(asleep / 60 - 8) * 12)
    efficiency_score = max(0.0, min(35.0, (efficiency - 65) * 35 / 25))
    continuity_score = max(0.0, 15 - 3 * awakenings - max(0, minutes_to_fall_asleep - 20) * 0.3)
    score = round(duration_score + efficiency_score + continuity_score)
    return {"time_in_bed_minutes": round(in_bed), "total_sleep_minutes": round(asleep),
            "sleep_efficiency_pct": round(efficiency, 1), "sleep_score": score,
            "rating": "excellent" if score >= 85 else "good" if score >= 70 else "fair" if score >= 50 else "poor"}


def schedule_reminders(
    medication: str,
    dose_mg: float,
    times_per_day: int,
    start_date: str,
    duration_days: int,
    first_dose_time: str = "08:00:00",
    with_food: bool = False,
) -> dict[str, Any]:
    """Spread daily doses evenly over a 14-hour waking window and list the reminder times."""
    if not isinstance(medication, str) or not medication.strip():
        raise ValueError("medication must be a non-empty name")
    number_in_range(dose_mg, 0.01, 5000, "dose_mg")
    int_in_range(times_per_day, 1, 6, "times_per_day")
    first = parse_date(start_date, "start_date")
    int_in_range(duration_days, 1, 365, "duration_days")
    try:
        if not isinstance(first_dose_time, str) or not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", first_dose_time):
            raise ValueError(first_dose_time)
        t0 = dt.time.fromisoformat(first_dose_time)
    except ValueError:
        raise ValueError(f"first_dose_time must be HH:MM:SS, got {first_dose_time!r}") from None
    gap = 14 * 60 / (times_per_day - 1) if times_per_day > 1 else 0
    base = t0.hour * 60 + t0.minute
    times = []
    for i in range(times_per_day):
        m = round(base + i * gap) % (24 * 60)
        times.append(f"{m // 60:02d}:{m % 60:02d}")
    last = first + dt.timedelta(days=duration_days - 1)
    return {"medication": medication.strip(), "dose_mg": dose_mg, "daily_times": times,
            "instructions": "take with food" if with_food else "can be taken with or without food",
            "start_date": first.isoformat(), "end_date": last.isoformat(),
            "total_doses": times_per_day * duration_days, "total_mg": round(dose_mg * times_per_day * duration_days, 2),
            "note": "follow your prescriber's instructions"}
