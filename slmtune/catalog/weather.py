"""Weather tools: forecasts, conditions, air quality, alerts, climate normals and comfort indices."""

from __future__ import annotations

import math
from typing import Any

from slmtune.catalog.common import int_in_range, number_in_range, one_of, seeded_rng

# City -> (latitude, annual mean °C, seasonal amplitude °C, annual precipitation mm, mean relative humidity %)
CLIMATE: dict[str, tuple[float, float, float, float, float]] = {
    "Chicago": (41.88, 10.5, 14.5, 990, 70),
    "Lisbon": (38.72, 17.4, 6.0, 720, 72),
    "Tokyo": (35.68, 16.3, 10.5, 1530, 65),
    "Sydney": (-33.87, 18.6, 5.0, 1210, 68),
    "Denver": (39.74, 10.4, 12.0, 400, 52),
    "Oslo": (59.91, 6.3, 11.0, 760, 75),
    "Mumbai": (19.08, 27.2, 2.5, 2200, 75),
    "Cape Town": (-33.92, 17.0, 4.5, 520, 72),
    "Phoenix": (33.45, 24.0, 10.5, 200, 35),
    "Singapore": (1.35, 27.6, 0.8, 2340, 83),
    "London": (51.51, 11.3, 7.0, 620, 77),
    "Nairobi": (-1.29, 18.9, 1.5, 870, 68),
}

UNITS = ("metric", "imperial")
CONDITIONS = ("sunny", "partly cloudy", "cloudy", "light rain", "showers", "thunderstorms", "fog", "snow")
SEVERITIES = ("minor", "moderate", "severe", "extreme")
ALERT_TYPES = ("thunderstorm", "flash flood", "heat", "winter storm", "high wind", "wildfire smoke", "coastal flood")
POLLUTANTS = ("pm2.5", "pm10", "o3", "no2", "so2", "co")

# US EPA breakpoints: pollutant -> list of (C_low, C_high, I_low, I_high); PM in µg/m³, gases in ppb, CO in ppm.
EPA_BREAKPOINTS: dict[str, list[tuple[float, float, int, int]]] = {
    "pm2.5": [(0, 9.0, 0, 50), (9.1, 35.4, 51, 100), (35.5, 55.4, 101, 150), (55.5, 125.4, 151, 200),
              (125.5, 225.4, 201, 300), (225.5, 325.4, 301, 500)],
    "pm10": [(0, 54, 0, 50), (55, 154, 51, 100), (155, 254, 101, 150), (255, 354, 151, 200), (355, 424, 201, 300),
             (425, 604, 301, 500)],
    "o3": [(0, 54, 0, 50), (55, 70, 51, 100), (71, 85, 101, 150), (86, 105, 151, 200), (106, 200, 201, 300)],
    "no2": [(0, 53, 0, 50), (54, 100, 51, 100), (101, 360, 101, 150), (361, 649, 151, 200), (650, 1249, 201, 300),
            (1250, 2049, 301, 500)],
    "so2": [(0, 35, 0, 50), (36, 75, 51, 100), (76, 185, 101, 150), (186, 304, 151, 200), (305, 604, 201, 300),
            (605, 1004, 301, 500)],
    "co": [(0, 4.4, 0, 50), (4.5, 9.4, 51, 100), (9.5, 12.4, 101, 150), (12.5, 15.4, 151, 200),
           (15.5, 30.4, 201, 300), (30.5, 50.4, 301, 500)],
}
EPA_DECIMALS = {"pm2.5": 1, "pm10": 0, "o3": 0, "no2": 0, "so2": 0, "co": 1}
EPA_CATEGORIES = ((50, "good"), (100, "moderate"), (150, "unhealthy for sensitive groups"), (200, "unhealthy"),
                  (300, "very unhealthy"), (500, "hazardous"))
# European Air Quality Index upper bounds in µg/m³ for good, fair, moderate, poor, very poor (else extremely poor).
EAQI_BOUNDS: dict[str, tuple[float, ...]] = {
    "pm2.5": (10, 20, 25, 50, 75),
    "pm10": (20, 40, 50, 100, 150),
    "o3": (50, 100, 130, 240, 380),
    "no2": (40, 90, 120, 230, 340),
    "so2": (100, 200, 350, 500, 750),
}
EAQI_LEVELS = ("good", "fair", "moderate", "poor", "very poor", "extremely poor")
PPB_TO_UGM3 = {"o3": 1.96, "no2": 1.88, "so2": 2.62}


def _location(location: str) -> str:
    if not isinstance(location, str) or not location.strip():
        raise ValueError("location must be a non-empty place name such as 'Chicago'")
    return location.strip()


def _c_to_f(celsius: float) -> float:
    return celsius * 9 / 5 + 32


def _f_to_c(fahrenheit: float) -> float:
    return (fahrenheit - 32) * 5 / 9


def _baseline(location: str) -> tuple[float, float, float]:
    """Return (mean temperature °C, daily precipitation chance, humidity %) for a location."""
    for city, (_lat, mean, _amp, precip, humidity) in CLIMATE.items():
        if city.lower() == location.lower():
            return mean, min(0.8, precip / 2600), humidity
    rng = seeded_rng("baseline", location.lower())
    return rng.uniform(4, 27), rng.uniform(0.1, 0.6), rng.uniform(40, 85)


def forecast_daily(location: str, days: int = 7, units: str = "metric", include_hourly: bool = False) -> dict[str, Any]:
    """Return a deterministic sample daily forecast for a location."""
    location = _location(location)
    int_in_range(days, 1, 14, "days")
    one_of(units, UNITS, "units")
    mean, rain_chance, humidity = _baseline(location)
    rng = seeded_rng("forecast", location.lower())
    temp = (lambda c: round(_c_to_f(c), 1)) if units == "imperial" else (lambda c: round(c, 1))
    speed = (lambda kmh: round(kmh / 1.609344, 1)) if units == "imperial" else (lambda kmh: round(kmh, 1))
    out = []
    level = mean + rng.uniform(-3, 3)
    for day in range(1, days + 1):
        level += rng.uniform(-2.5, 2.5)
        high, low = level + rng.uniform(3, 7), level - rng.uniform(3, 7)
        precip = min(100, max(0, round((rain_chance + rng.uniform(-0.3, 0.3)) * 100)))
        options = CONDITIONS[:6] if precip > 40 else CONDITIONS[:3]
        condition = "snow" if high < 1 and precip > 50 else rng.choice(options)
        entry: dict[str, Any] = {
            "day": day,
            "condition": condition,
            "high": temp(high),
            "low": temp(low),
            "precipitation_chance_pct": precip,
            "humidity_pct": round(min(100, max(10, humidity + rng.uniform(-12, 12)))),
            "wind_speed": speed(rng.uniform(3, 35)),
        }
        if include_hourly:
            hourly = []
            for hour in range(0, 24, 3):
                if 5 <= hour <= 15:
                    value = low + (high - low) * (1 - math.cos(math.pi * (hour - 5) / 10)) / 2
                else:
                    value = high - (high - low) * ((hour - 15) % 24) / 14
                hourly.append({"hour": hour, "temperature": temp(value),
                               "precipitation_chance_pct": min(100, max(0, precip + rng.randint(-15, 15)))})
            entry["hourly"] = hourly
        out.append(entry)
    return {"location": location, "units": units,
            "temperature_unit": "°F" if units == "imperial" else "°C",
            "wind_speed_unit": "mph" if units == "imperial" else "km/h", "days": out}


def current_conditions(location: str, units: str = "metric", include_feels_like: bool = True) -> dict[str, Any]:
    """Return deterministic sample current weather for a location."""
    location = _location(location)
    one_of(units, UNITS, "units")
    mean, rain_chance, humidity = _baseline(location)
    rng = seeded_rng("current", location.lower())
    temp_c = mean + rng.uniform(-6, 6)
    wind_kmh = rng.uniform(0, 30)
    rh = min(100, max(10, humidity + rng.uniform(-15, 15)))
    result: dict[str, Any] = {
        "location": location,
        "units": units,
        "condition": rng.choice(CONDITIONS[:6] if rng.random() < rain_chance else CONDITIONS[:3]),
        "temperature": round(_c_to_f(temp_c) if units == "imperial" else temp_c, 1),
        "humidity_pct": round(rh),
        "wind_speed": round(wind_kmh / 1.609344 if units == "imperial" else wind_kmh, 1),
        "wind_direction": rng.choice(["N", "NE", "E", "SE", "S", "SW", "W", "NW"]),
        "pressure_hpa": round(rng.uniform(995, 1030), 1),
        "visibility_km": round(rng.uniform(4, 20), 1),
        "uv_index": rng.randint(0, 10),
    }
    if include_feels_like:
        feels = compute_wind_chill(temp_c, max(wind_kmh, 5.0), "metric")["wind_chill"] if temp_c <= 10 else (
            compute_heat_index(_c_to_f(temp_c), round(rh), "celsius")["heat_index"] if temp_c >= 27
            else temp_c)
        result["feels_like"] = round(_c_to_f(feels) if units == "imperial" else feels, 1)
    return result


def _epa_index(pollutant: str, concentration: float) -> int:
    c = math.floor(concentration * 10 ** EPA_DECIMALS[pollutant]) / 10 ** EPA_DECIMALS[pollutant]
    table = EPA_BREAKPOINTS[pollutant]
    for c_lo, c_hi, i_lo, i_hi in table:
        if c <= c_hi:
            c = max(c, c_lo)
            return round((i_hi - i_lo) / (c_hi - c_lo) * (c - c_lo) + i_lo)
    return table[-1][3]


def _epa_category(index: int) -> str:
    return next(name for bound, name in EPA_CATEGORIES if index <= bound) if index <= 500 else "hazardous"


def air_quality_report(location: str, pollutants: list[str] | None = None, standard: str = "us_epa") -> dict[str, Any]:
    """Compute an air-quality index from deterministic sample pollutant concentrations."""
    location = _location(location)
    chosen = list(pollutants or POLLUTANTS)
    for p in chosen:
        one_of(p, POLLUTANTS, "pollutants item")
    one_of(standard, ("us_epa", "eu_eaqi"), "standard")
    rng = seeded_rng("aqi", location.lower())
    load = rng.uniform(0.3, 2.2)
    conc = {
        "pm2.5": round(rng.uniform(3, 30) * load, 1),
        "pm10": round(rng.uniform(8, 60) * load, 1),
        "o3": round(rng.uniform(15, 60) * (0.6 + load / 3), 1),
        "no2": round(rng.uniform(5, 45) * load, 1),
        "so2": round(rng.uniform(1, 15) * load, 1),
        "co": round(rng.uniform(0.2, 2.5) * load, 2),
    }
    units = {"pm2.5": "µg/m³", "pm10": "µg/m³", "o3": "ppb", "no2": "ppb", "so2": "ppb", "co": "ppm"}
    rows = []
    if standard == "us_epa":
        for p in chosen:
            idx = _epa_index(p, conc[p])
            rows.append({"pollutant": p, "concentration": conc[p], "unit": units[p], "index": idx,
                         "category": _epa_category(idx)})
        overall = max(rows, key=lambda r: r["index"])
        return {"location": location, "standard": standard, "aqi": overall["index"],
                "category": overall["category"], "dominant_pollutant": overall["pollutant"], "pollutants": rows}
    for p in chosen:
        if p not in EAQI_BOUNDS:
            rows.append({"pollutant": p, "concentration": conc[p], "unit": units[p], "level": None,
                         "note": "not part of the European AQI"})
            continue
        ugm3 = conc[p] * PPB_TO_UGM3.get(p, 1.0)
        level = next((i for i, bound in enumerate(EAQI_BOUNDS[p]) if ugm3 <= bound), 5)
        rows.append({"pollutant": p, "concentration": round(ugm3, 1), "unit": "µg/m³", "level": EAQI_LEVELS[level],
                     "level_index": level + 1})
    scored = [r for r in rows if r.get("level")]
    if not scored:
        raise ValueError("the European AQI needs at least one of pm2.5, pm10, o3, no2 or so2")
    worst = max(scored, key=lambda r: r["level_index"])
    return {"location": location, "standard": standard, "level": worst["level"], "level_index": worst["level_index"],
            "dominant_pollutant": worst["pollutant"], "pollutants": rows}


def severe_alerts(point: dict[str, float], min_severity: str = "moderate", radius_km: int = 50) -> dict[str, Any]:
    """Return deterministic sample weather alerts near a coordinate at or above a severity."""
    coords = point if isinstance(point, dict) else {}
    lat, lon = coords.get("latitude"), coords.get("longitude")
    number_in_range(lat, -90, 90, "point.latitude")
    number_in_range(lon, -180, 180, "point.longitude")
    one_of(min_severity, SEVERITIES, "min_severity")
    int_in_range(radius_km, 5, 200, "radius_km")
    rng = seeded_rng("alerts", round(lat, 1), round(lon, 1))
    alerts = []
    for _ in range(rng.randint(0, 4)):
        severity = rng.choice(SEVERITIES)
        distance = round(rng.uniform(0, 200), 1)
        if SEVERITIES.index(severity) < SEVERITIES.index(min_severity) or distance > radius_km:
            continue
        kind = rng.choice(ALERT_TYPES)
        onset = rng.randint(0, 36)
        alerts.append({"id": f"ALRT-{rng.randint(100000, 999999)}", "event": f"{kind} warning", "severity": severity,
                       "distance_km": distance, "onset_in_hours": onset,
                       "expires_in_hours": onset + rng.randint(3, 48)})
    return {"point": {"latitude": lat, "longitude": lon}, "radius_km": radius_km, "min_severity": min_severity,
            "alerts": sorted(alerts, key=lambda a: a["onset_in_hours"])}


def climate_normals(location: str, month: int, units: str = "metric") -> dict[str, Any]:
    """Return modelled monthly climate normals for a city in the built-in climate table."""
    match = next((c for c in CLIMATE if c.lower() == str(location).strip().lower()), None)
    if match is None:
        raise ValueError(f"no climate data for {location!r}; known: {', '.join(sorted(CLIMATE))}")
    int_in_range(month, 1, 12, "month")
    one_of(units, UNITS, "units")
    lat, mean, amp, precip, humidity = CLIMATE[match]
    peak = 7.5 if lat >= 0 else 1.5
    avg = mean + amp * math.cos(2 * math.pi * (month - peak) / 12)
    rng = seeded_rng("normals", match, month)
    monthly_precip = precip / 12 * rng.uniform(0.55, 1.45)
    high, low = avg + 4.5, avg - 4.5
    if units == "imperial":
        high, low, avg = _c_to_f(high), _c_to_f(low), _c_to_f(avg)
    return {
        "location": match, "month": month, "units": units,
        "mean_temperature": round(avg, 1), "mean_high": round(high, 1), "mean_low": round(low, 1),
        "precipitation": round(monthly_precip / 25.4, 2) if units == "imperial" else round(monthly_precip),
        "precipitation_unit": "in" if units == "imperial" else "mm",
        "rainy_days": max(1, round(monthly_precip / 8)),
        "mean_humidity_pct": humidity,
    }


def compute_heat_index(
    temperature_f: float, relative_humidity: float, output_unit: str = "fahrenheit"
) -> dict[str, Any]:
    """Compute the NWS heat index (Rothfusz regression with adjustments)."""
    t = number_in_range(temperature_f, -60, 140, "temperature_f")
    rh = number_in_range(relative_humidity, 0, 100, "relative_humidity")
    one_of(output_unit, ("fahrenheit", "celsius"), "output_unit")
    hi = 0.5 * (t + 61.0 + (t - 68.0) * 1.2 + rh * 0.094)
    if (hi + t) / 2 >= 80:
        hi = (-42.379 + 2.04901523 * t + 10.14333127 * rh - 0.22475541 * t * rh - 0.00683783 * t * t
              - 0.05481717 * rh * rh + 0.00122874 * t * t * rh + 0.00085282 * t * rh * rh
              - 0.00000199 * t * t * rh * rh)
        if rh < 13 and 80 <= t <= 112:
            hi -= (13 - rh) / 4 * math.sqrt((17 - abs(t - 95)) / 17)
        elif rh > 85 and 80 <= t <= 87:
            hi += (rh - 85) / 10 * (87 - t) / 5
    risk = ("none" if hi < 80 else "caution" if hi < 90 else "extreme caution" if hi < 103
            else "danger" if hi < 125 else "extreme danger")
    value = hi if output_unit == "fahrenheit" else _f_to_c(hi)
    return {"heat_index": round(value, 1), "unit": output_unit, "risk_level": risk}


def compute_wind_chill(temperature: float, wind_speed: float, unit_system: str = "imperial") -> dict[str, Any]:
    """Compute the NWS/Environment Canada wind chill temperature."""
    one_of(unit_system, UNITS, "unit_system")
    metric = unit_system == "metric"
    t = number_in_range(temperature, -70 if metric else -90, 60 if metric else 140, "temperature")
    v = number_in_range(wind_speed, 0, 250 if metric else 155, "wind_speed")
    threshold_t, threshold_v = (10.0, 4.8) if metric else (50.0, 3.0)
    if t > threshold_t or v < threshold_v:
        wc, applicable = t, False
    elif metric:
        wc, applicable = 13.12 + 0.6215 * t - 11.37 * v ** 0.16 + 0.3965 * t * v ** 0.16, True
    else:
        wc, applicable = 35.74 + 0.6215 * t - 35.75 * v ** 0.16 + 0.4275 * t * v ** 0.16, True
    wc_c = wc if metric else _f_to_c(wc)
    frostbite = ("2-5 minutes" if wc_c <= -48 else "5-10 minutes" if wc_c <= -40 else "10-30 minutes"
                 if wc_c <= -28 else None)
    return {"wind_chill": round(wc, 1), "unit": "°C" if metric else "°F", "formula_applicable": applicable,
            "frostbite_risk_within": frostbite}


def dew_point_from_humidity(temperature_c: float, relative_humidity: float) -> dict[str, Any]:
    """Compute the dew point with the Magnus formula and rate how humid it feels."""
    t = number_in_range(temperature_c, -45, 60, "temperature_c")
    rh = number_in_range(relative_humidity, 1, 100, "relative_humidity")
    a, b = 17.62, 243.12
    gamma = math.log(rh / 100) + a * t / (b + t)
    dp = b * gamma / (a - gamma)
    comfort = ("dry" if dp < 10 else "comfortable" if dp < 13 else "pleasant" if dp < 16 else "slightly humid"
               if dp < 18 else "humid" if dp < 21 else "very humid" if dp < 24 else "oppressive")
    return {"dew_point_c": round(dp, 1), "dew_point_f": round(_c_to_f(dp), 1), "comfort": comfort,
            "spread_c": round(t - dp, 1)}


def degree_days(daily_mean_temps_c: list[float], base_c: float = 18, kind: str = "both") -> dict[str, Any]:
    """Compute heating and cooling degree days from daily mean temperatures."""
    if not isinstance(daily_mean_temps_c, list) or not 1 <= len(daily_mean_temps_c) <= 366:
        raise ValueError("daily_mean_temps_c must be a list of 1 to 366 daily mean temperatures")
    temps = [number_in_range(t, -80, 60, f"daily_mean_temps_c[{i}]") for i, t in enumerate(daily_mean_temps_c)]
    base = number_in_range(base_c, 0, 30, "base_c")
    one_of(kind, ("heating", "cooling", "both"), "kind")
    result: dict[str, Any] = {"days": len(temps), "base_c": base, "mean_c": round(sum(temps) / len(temps), 2)}
    if kind in ("heating", "both"):
        result["heating_degree_days"] = round(sum(max(0.0, base - t) for t in temps), 1)
    if kind in ("cooling", "both"):
        result["cooling_degree_days"] = round(sum(max(0.0, t - base) for t in temps), 1)
    return result
