"""Maps and navigation tools: distances, geocoding, nearby places, multi-stop routes, traffic, bearings, transit."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from slmtune.catalog.common import int_in_range, one_of, seeded_rng

# City -> (latitude, longitude, landmass). Cities on the same landmass are connected by road.
CITIES: dict[str, tuple[float, float, str]] = {
    "San Francisco": (37.7749, -122.4194, "north_america"), "Los Angeles": (34.0522, -118.2437, "north_america"),
    "Seattle": (47.6062, -122.3321, "north_america"), "Phoenix": (33.4484, -112.0740, "north_america"),
    "Salt Lake City": (40.7608, -111.8910, "north_america"), "Denver": (39.7392, -104.9903, "north_america"),
    "Dallas": (32.7767, -96.7970, "north_america"), "Houston": (29.7604, -95.3698, "north_america"),
    "Omaha": (41.2565, -95.9345, "north_america"), "Kansas City": (39.0997, -94.5786, "north_america"),
    "Minneapolis": (44.9778, -93.2650, "north_america"), "St. Louis": (38.6270, -90.1994, "north_america"),
    "Memphis": (35.1495, -90.0490, "north_america"), "Chicago": (41.8781, -87.6298, "north_america"),
    "Nashville": (36.1627, -86.7816, "north_america"), "Indianapolis": (39.7684, -86.1581, "north_america"),
    "Louisville": (38.2527, -85.7585, "north_america"), "Cincinnati": (39.1031, -84.5120, "north_america"),
    "Atlanta": (33.7490, -84.3880, "north_america"), "Detroit": (42.3314, -83.0458, "north_america"),
    "Columbus": (39.9612, -82.9988, "north_america"), "Charlotte": (35.2271, -80.8431, "north_america"),
    "Miami": (25.7617, -80.1918, "north_america"), "Pittsburgh": (40.4406, -79.9959, "north_america"),
    "Toronto": (43.6532, -79.3832, "north_america"), "Washington": (38.9072, -77.0369, "north_america"),
    "Philadelphia": (39.9526, -75.1652, "north_america"), "New York": (40.7128, -74.0060, "north_america"),
    "Montreal": (45.5019, -73.5674, "north_america"), "Boston": (42.3601, -71.0589, "north_america"),
    "Mexico City": (19.4326, -99.1332, "north_america"),
    "Lisbon": (38.7223, -9.1393, "europe"), "Madrid": (40.4168, -3.7038, "europe"),
    "Barcelona": (41.3874, 2.1686, "europe"), "London": (51.5074, -0.1278, "europe"),
    "Paris": (48.8566, 2.3522, "europe"), "Lyon": (45.7640, 4.8357, "europe"),
    "Brussels": (50.8503, 4.3517, "europe"), "Amsterdam": (52.3676, 4.9041, "europe"),
    "Frankfurt": (50.1109, 8.6821, "europe"), "Zurich": (47.3769, 8.5417, "europe"),
    "Milan": (45.4642, 9.1900, "europe"), "Hamburg": (53.5511, 9.9937, "europe"),
    "Munich": (48.1351, 11.5820, "europe"), "Rome": (41.9028, 12.4964, "europe"),
    "Copenhagen": (55.6761, 12.5683, "europe"), "Berlin": (52.5200, 13.4050, "europe"),
    "Prague": (50.0755, 14.4378, "europe"), "Vienna": (48.2082, 16.3738, "europe"),
    "Mumbai": (19.0760, 72.8777, "asia"), "Singapore": (1.3521, 103.8198, "asia"),
    "Seoul": (37.5665, 126.9780, "korea"), "Osaka": (34.6937, 135.5023, "japan"),
    "Tokyo": (35.6762, 139.6503, "japan"), "Melbourne": (-37.8136, 144.9631, "australia"),
    "Sydney": (-33.8688, 151.2093, "australia"),
}

# Landmark -> (latitude, longitude, formatted address)
LANDMARKS: dict[str, tuple[float, float, str]] = {
    "Eiffel Tower": (48.8584, 2.2945, "Champ de Mars, 5 Av. Anatole France, 75007 Paris, France"),
    "Golden Gate Bridge": (37.8199, -122.4783, "Golden Gate Bridge, San Francisco, CA, USA"),
    "Sydney Opera House": (-33.8568, 151.2153, "Bennelong Point, Sydney NSW 2000, Australia"),
    "Brandenburg Gate": (52.5163, 13.3777, "Pariser Platz, 10117 Berlin, Germany"),
    "Shibuya Crossing": (35.6595, 139.7005, "2 Chome-2-1 Dogenzaka, Shibuya City, Tokyo, Japan"),
    "Colosseum": (41.8902, 12.4922, "Piazza del Colosseo, 1, 00184 Roma RM, Italy"),
    "Statue of Liberty": (40.6892, -74.0445, "Liberty Island, New York, NY 10004, USA"),
    "Sagrada Familia": (41.4036, 2.1744, "C/ de Mallorca, 401, 08013 Barcelona, Spain"),
    "Space Needle": (47.6205, -122.3493, "400 Broad St, Seattle, WA 98109, USA"),
    "Tower Bridge": (51.5055, -0.0754, "Tower Bridge Rd, London SE1 2UP, United Kingdom"),
}

MODES: dict[str, tuple[float, float]] = {"driving": (1.25, 88.0), "cycling": (1.2, 17.0), "walking": (1.15, 4.8)}
PLACE_CATEGORIES = ("restaurant", "cafe", "gas_station", "ev_charger", "pharmacy", "parking", "atm", "supermarket")
INCIDENT_TYPES = ("accident", "construction", "closure", "congestion", "weather")
COMPASS = ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")
KM_PER_MILE = 1.609344


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def city(name: str, param: str = "city") -> tuple[float, float, str]:
    """Look up a city of the built-in table (case-insensitive) or raise ValueError."""
    if isinstance(name, str):
        for key, value in CITIES.items():
            if key.lower() == name.strip().lower():
                return value
    raise ValueError(f"{param}: unknown city {name!r}; known cities: {', '.join(sorted(CITIES))}")


def _canonical(name: str) -> str:
    return next(k for k in CITIES if k.lower() == name.strip().lower())


def _coords(point: dict[str, float], name: str) -> tuple[float, float]:
    fields = point if isinstance(point, dict) else {}
    out = []
    for key, bound in (("latitude", 90), ("longitude", 180)):
        v = fields.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not -bound <= v <= bound:
            raise ValueError(f"{name}.{key} must be a number between -{bound} and {bound}, got {v!r}")
        out.append(float(v))
    return out[0], out[1]


def route_distance_estimate(
    origin: str, destination: str, mode: str = "driving", unit: str = "km", avoid_tolls: bool = False
) -> dict[str, Any]:
    """Estimate road distance and travel time between two cities from great-circle distance and mode factors."""
    o, d = city(origin, "origin"), city(destination, "destination")
    one_of(mode, tuple(MODES), "mode")
    one_of(unit, ("km", "mi"), "unit")
    if _canonical(origin) == _canonical(destination):
        raise ValueError("origin and destination are the same city")
    if o[2] != d[2]:
        raise ValueError(f"no overland route between {origin} and {destination}")
    factor, speed = MODES[mode]
    straight = haversine_km(o[0], o[1], d[0], d[1])
    road = straight * factor * (1.06 if avoid_tolls and mode == "driving" else 1.0)
    hours = road / (speed * (0.92 if avoid_tolls and mode == "driving" else 1.0))
    scale = 1 if unit == "km" else 1 / KM_PER_MILE
    return {"origin": _canonical(origin), "destination": _canonical(destination), "mode": mode, "unit": unit,
            "straight_line_distance": round(straight * scale, 1), "route_distance": round(road * scale, 1),
            "duration_minutes": round(hours * 60), "avoid_tolls": avoid_tolls}


def geocode_place(place: str, country_hint: str = "") -> dict[str, Any]:
    """Resolve a well-known landmark or city name to coordinates."""
    if not isinstance(place, str) or not place.strip():
        raise ValueError("place must be a non-empty string")
    if country_hint and not re.fullmatch(r"[A-Z]{2}", country_hint):
        raise ValueError(f"country_hint must be an ISO 3166-1 alpha-2 code, got {country_hint!r}")
    key = place.strip().lower()
    for name, (lat, lon, address) in LANDMARKS.items():
        if name.lower() == key:
            return {"query": place, "name": name, "latitude": lat, "longitude": lon, "formatted_address": address,
                    "type": "landmark"}
    for name, (lat, lon, _) in CITIES.items():
        if name.lower() == key:
            return {"query": place, "name": name, "latitude": lat, "longitude": lon, "formatted_address": name,
                    "type": "city"}
    raise ValueError(f"no geocoding result for {place!r}")


def reverse_geocode(coordinates: dict[str, float], max_distance_km: int = 50) -> dict[str, Any]:
    """Find the nearest known city and landmark to a coordinate."""
    lat, lon = _coords(coordinates, "coordinates")
    int_in_range(max_distance_km, 1, 20000, "max_distance_km")
    nearest_city = min(CITIES, key=lambda c: haversine_km(lat, lon, CITIES[c][0], CITIES[c][1]))
    city_km = haversine_km(lat, lon, CITIES[nearest_city][0], CITIES[nearest_city][1])
    nearest_mark = min(LANDMARKS, key=lambda m: haversine_km(lat, lon, LANDMARKS[m][0], LANDMARKS[m][1]))
    mark_km = haversine_km(lat, lon, LANDMARKS[nearest_mark][0], LANDMARKS[nearest_mark][1])
    return {"latitude": lat, "longitude": lon, "nearest_city": nearest_city, "city_distance_km": round(city_km, 2),
            "within_radius": city_km <= max_distance_km,
            "nearest_landmark": nearest_mark if mark_km <= max_distance_km else None,
            "landmark_distance_km": round(mark_km, 2) if mark_km <= max_distance_km else None}


def search_nearby(
    location: str,
    category: str,
    radius_m: int = 1500,
    open_now: bool = False,
    min_rating: float = 0,
    limit: int = 5,
) -> dict[str, Any]:
    """Return deterministic sample places of a category around a city centre."""
    lat, lon, _ = city(location, "location")
    one_of(category, PLACE_CATEGORIES, "category")
    int_in_range(radius_m, 100, 50000, "radius_m")
    if isinstance(min_rating, bool) or not isinstance(min_rating, (int, float)) or not 0 <= min_rating <= 5:
        raise ValueError(f"min_rating must be between 0 and 5, got {min_rating!r}")
    int_in_range(limit, 1, 20, "limit")
    rng = seeded_rng("places", _canonical(location), category)
    names = {"restaurant": ["Trattoria", "Bistro", "Kitchen", "Grill", "Noodle Bar"], "cafe": ["Coffee", "Roasters",
             "Espresso Bar", "Café"], "gas_station": ["Shell", "BP", "Chevron", "Esso"],
             "ev_charger": ["Ionity", "ChargePoint", "Tesla Supercharger", "Electrify"],
             "pharmacy": ["Pharmacy", "Apotheke", "Drugstore"],
             "parking": ["Parking Garage", "Park & Ride", "Car Park"],
             "atm": ["ATM"], "supermarket": ["Market", "Grocer", "Supermarket"]}[category]
    results = []
    for _ in range(25):
        north, east = rng.uniform(-1, 1) * radius_m, rng.uniform(-1, 1) * radius_m
        distance = math.hypot(north, east)
        if distance > radius_m:
            continue
        place = {"place_id": f"PLC-{rng.randint(10**6, 10**7 - 1)}",
                 "name": f"{rng.choice(['Central', 'Old Town', 'Riverside', 'North', 'Station', 'Park'])} "
                         f"{rng.choice(names)}",
                 "latitude": round(lat + north / 111_320, 5),
                 "longitude": round(lon + east / (111_320 * math.cos(math.radians(lat))), 5),
                 "distance_m": round(distance), "rating": round(rng.uniform(3.0, 4.9), 1),
                 "open_now": rng.random() < 0.7}
        if place["rating"] < min_rating or (open_now and not place["open_now"]):
            continue
        results.append(place)
    results.sort(key=lambda p: p["distance_m"])
    return {"location": _canonical(location), "category": category, "radius_m": radius_m, "results": results[:limit]}


def _tour_length(order: list[str], closed: bool) -> float:
    legs = list(zip(order[:-1], order[1:], strict=True))
    if closed:
        legs.append((order[-1], order[0]))
    return sum(haversine_km(CITIES[a][0], CITIES[a][1], CITIES[b][0], CITIES[b][1]) for a, b in legs)


def plan_multi_stop_route(
    start: str, stops: list[str], optimize_order: bool = True, return_to_start: bool = False
) -> dict[str, Any]:
    """Order stops to shorten a driving tour (nearest neighbour + 2-opt) and estimate legs."""
    city(start, "start")
    if not isinstance(stops, list) or not 1 <= len(stops) <= 10:
        raise ValueError("stops must be a list of 1 to 10 cities")
    origin = _canonical(start)
    names = []
    for s in stops:
        city(s, "stops item")
        names.append(_canonical(s))
    if len(set(names)) != len(names) or origin in names:
        raise ValueError("stops must be distinct and must not repeat the start city")
    if any(CITIES[n][2] != CITIES[origin][2] for n in names):
        raise ValueError("every stop must be reachable overland from the start city")
    order = [origin, *names]
    if optimize_order:
        todo, order = set(names), [origin]
        while todo:
            last = order[-1]
            nxt = min(sorted(todo), key=lambda c: haversine_km(CITIES[last][0], CITIES[last][1], CITIES[c][0],
                                                              CITIES[c][1]))
            order.append(nxt)
            todo.remove(nxt)
        improved = True
        while improved:
            improved = False
            for i in range(1, len(order) - 1):
                for j in range(i + 1, len(order)):
                    candidate = order[:i] + order[i:j + 1][::-1] + order[j + 1:]
                    if _tour_length(candidate, return_to_start) < _tour_length(order, return_to_start) - 1e-9:
                        order, improved = candidate, True
    path = order + ([origin] if return_to_start else [])
    factor, speed = MODES["driving"]
    legs = []
    for a, b in zip(path[:-1], path[1:], strict=True):
        km = haversine_km(CITIES[a][0], CITIES[a][1], CITIES[b][0], CITIES[b][1]) * factor
        legs.append({"from": a, "to": b, "distance_km": round(km, 1), "duration_minutes": round(km / speed * 60)})
    return {"order": path, "legs": legs, "total_distance_km": round(sum(leg["distance_km"] for leg in legs), 1),
            "total_duration_minutes": sum(leg["duration_minutes"] for leg in legs), "optimized": optimize_order}


def incidents_on_route(
    origin: str, destination: str, incident_types: list[str] | None = None, min_delay_minutes: int = 0
) -> dict[str, Any]:
    """Return deterministic sample traffic incidents between two cities."""
    if city(origin, "origin")[2] != city(destination, "destination")[2]:
        raise ValueError(f"no overland route between {origin} and {destination}")
    kinds = list(incident_types or INCIDENT_TYPES)
    for k in kinds:
        one_of(k, INCIDENT_TYPES, "incident_types item")
    int_in_range(min_delay_minutes, 0, 600, "min_delay_minutes")
    rng = seeded_rng("traffic", _canonical(origin), _canonical(destination))
    roads = ["I-80", "I-70", "I-95", "US-101", "A1", "A7", "E40", "M25", "I-35", "E19"]
    incidents = []
    for _ in range(rng.randint(0, 7)):
        kind = rng.choice(INCIDENT_TYPES)
        delay = rng.choice((0, 3, 5, 10, 15, 25, 40, 60))
        if kind not in kinds or delay < min_delay_minutes:
            continue
        incidents.append({"id": f"INC-{rng.randint(10**5, 10**6 - 1)}", "type": kind, "road": rng.choice(roads),
                          "km_from_origin": round(rng.uniform(1, 300), 1), "delay_minutes": delay,
                          "lanes_blocked": rng.randint(0, 3) if kind != "congestion" else 0})
    incidents.sort(key=lambda i: i["km_from_origin"])
    return {"origin": _canonical(origin), "destination": _canonical(destination), "incidents": incidents,
            "total_delay_minutes": sum(i["delay_minutes"] for i in incidents)}


def initial_compass_bearing(from_point: dict[str, float], to_point: dict[str, float]) -> dict[str, Any]:
    """Compute the great-circle initial and final bearing and distance between two coordinates."""
    lat1, lon1 = _coords(from_point, "from_point")
    lat2, lon2 = _coords(to_point, "to_point")
    if (lat1, lon1) == (lat2, lon2):
        raise ValueError("from_point and to_point are the same location")

    def bearing(a1: float, o1: float, a2: float, o2: float) -> float:
        p1, p2, dl = math.radians(a1), math.radians(a2), math.radians(o2 - o1)
        y = math.sin(dl) * math.cos(p2)
        x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
        return (math.degrees(math.atan2(y, x)) + 360) % 360

    initial = bearing(lat1, lon1, lat2, lon2)
    final = (bearing(lat2, lon2, lat1, lon1) + 180) % 360
    return {"initial_bearing_deg": round(initial, 2), "final_bearing_deg": round(final, 2),
            "compass_point": COMPASS[round(initial / 22.5) % 16],
            "distance_km": round(haversine_km(lat1, lon1, lat2, lon2), 2)}


def next_departures(stop_name: str, after_time: str, line: str = "", limit: int = 3) -> dict[str, Any]:
    """Return deterministic sample public-transport departures from a stop after a local time."""
    if not isinstance(stop_name, str) or not stop_name.strip():
        raise ValueError("stop_name must be a non-empty string")
    text = after_time[:-1] + "+00:00" if isinstance(after_time, str) and after_time.endswith(("Z", "z")) else after_time
    try:
        if not re.fullmatch(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2})?", text):
            raise ValueError(text)
        start = dt.time.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"after_time must be a time such as 08:15:00, got {after_time!r}") from None
    int_in_range(limit, 1, 10, "limit")
    rng = seeded_rng("transit", stop_name.strip().lower())
    lines = [f"{rng.choice(['U', 'S', 'M', 'Bus '])}{rng.randint(1, 9)}" for _ in range(4)]
    if line and line not in lines:
        lines[0] = line
    minute = start.hour * 60 + start.minute
    out = []
    while len(out) < limit and minute < 24 * 60 + 180:
        minute += rng.choice((2, 3, 4, 5, 7, 8, 10))
        chosen = rng.choice(lines)
        if line and chosen != line:
            continue
        clock = dt.time((minute // 60) % 24, minute % 60, tzinfo=start.tzinfo)
        out.append({"line": chosen, "departure": clock.isoformat(timespec="minutes"),
                    "destination": rng.choice(["Airport", "Central Station", "University", "Harbour", "Stadium"]),
                    "platform": str(rng.randint(1, 6)), "delay_minutes": rng.choice((0, 0, 0, 1, 2, 5))})
    return {"stop_name": stop_name.strip(), "after_time": start.isoformat(), "departures": out}
