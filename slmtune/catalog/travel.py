"""Travel tools: flights, stays, trains, trip budgets, visas and layovers (deterministic sample data)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from typing import Any

from slmtune.catalog.common import int_in_range, one_of, parse_date, seeded_rng

# IATA code -> (city, latitude, longitude, ISO country, minimum connection minutes domestic/international)
AIRPORTS: dict[str, tuple[str, float, float, str, int, int]] = {
    "SFO": ("San Francisco", 37.6213, -122.3790, "US", 45, 75),
    "JFK": ("New York", 40.6413, -73.7781, "US", 60, 90),
    "LAX": ("Los Angeles", 33.9416, -118.4085, "US", 60, 90),
    "ORD": ("Chicago", 41.9742, -87.9073, "US", 50, 90),
    "BOS": ("Boston", 42.3656, -71.0096, "US", 45, 75),
    "SEA": ("Seattle", 47.4502, -122.3088, "US", 45, 75),
    "YYZ": ("Toronto", 43.6777, -79.6248, "CA", 60, 90),
    "MEX": ("Mexico City", 19.4361, -99.0719, "MX", 60, 120),
    "GRU": ("Sao Paulo", -23.4356, -46.4731, "BR", 60, 120),
    "LHR": ("London", 51.4700, -0.4543, "GB", 60, 90),
    "CDG": ("Paris", 49.0097, 2.5479, "FR", 60, 90),
    "FRA": ("Frankfurt", 50.0379, 8.5622, "DE", 45, 60),
    "AMS": ("Amsterdam", 52.3105, 4.7683, "NL", 40, 50),
    "MAD": ("Madrid", 40.4983, -3.5676, "ES", 45, 60),
    "DXB": ("Dubai", 25.2532, 55.3657, "AE", 60, 75),
    "DEL": ("Delhi", 28.5562, 77.1000, "IN", 75, 120),
    "SIN": ("Singapore", 1.3644, 103.9915, "SG", 45, 60),
    "NRT": ("Tokyo", 35.7720, 140.3929, "JP", 60, 90),
    "HND": ("Tokyo", 35.5494, 139.7798, "JP", 45, 90),
    "ICN": ("Seoul", 37.4602, 126.4407, "KR", 45, 70),
    "SYD": ("Sydney", -33.9399, 151.1753, "AU", 45, 90),
    "JNB": ("Johannesburg", -26.1392, 28.2460, "ZA", 60, 90),
}

CARRIERS: dict[str, str] = {
    "US": "UA", "CA": "AC", "MX": "AM", "BR": "LA", "GB": "BA", "FR": "AF", "DE": "LH", "NL": "KL",
    "ES": "IB", "AE": "EK", "IN": "AI", "SG": "SQ", "JP": "NH", "KR": "KE", "AU": "QF", "ZA": "SA",
}

# Station -> (latitude, longitude)
STATIONS: dict[str, tuple[float, float]] = {
    "London St Pancras": (51.5317, -0.1263),
    "Paris Gare du Nord": (48.8809, 2.3553),
    "Brussels Midi": (50.8358, 4.3363),
    "Amsterdam Centraal": (52.3791, 4.9003),
    "Cologne Hbf": (50.9430, 6.9589),
    "Frankfurt Hbf": (50.1071, 8.6638),
    "Berlin Hbf": (52.5251, 13.3694),
    "Munich Hbf": (48.1402, 11.5600),
    "Zurich HB": (47.3779, 8.5403),
    "Vienna Hbf": (48.1853, 16.3760),
    "Milan Centrale": (45.4864, 9.2046),
}

# City -> daily cost per person in USD at the "moderate" level: (lodging per room, food, local transport, activities)
CITY_COSTS: dict[str, tuple[float, float, float, float]] = {
    "Lisbon": (120, 45, 10, 30),
    "Tokyo": (160, 55, 15, 40),
    "New York": (280, 75, 15, 60),
    "Bangkok": (70, 25, 8, 25),
    "Reykjavik": (230, 80, 20, 70),
    "Mexico City": (95, 30, 8, 25),
    "Paris": (210, 65, 12, 50),
    "Cape Town": (110, 35, 15, 35),
    "Rome": (170, 55, 10, 45),
    "Kyoto": (150, 50, 10, 40),
}
STYLE_FACTORS: dict[str, float] = {"budget": 0.55, "moderate": 1.0, "luxury": 2.6}

# (passport, destination) -> (status, max visa-free days, note)
VISA_RULES: dict[tuple[str, str], tuple[str, int, str]] = {
    ("US", "JP"): ("visa_free", 90, "Passport valid for the duration of stay."),
    ("US", "GB"): ("electronic_travel_authorisation", 180, "Apply for a UK ETA online before departure."),
    ("US", "FR"): ("visa_free", 90, "Schengen rule: 90 days within any 180-day period."),
    ("US", "MX"): ("visa_free", 180, "Complete the FMM entry form."),
    ("US", "TH"): ("visa_free", 60, "Proof of onward travel may be requested."),
    ("DE", "JP"): ("visa_free", 90, "Passport valid for the duration of stay."),
    ("DE", "GB"): ("electronic_travel_authorisation", 180, "Apply for a UK ETA online before departure."),
    ("DE", "FR"): ("freedom_of_movement", 365, "EU citizens need only a valid ID card or passport."),
    ("DE", "MX"): ("visa_free", 180, "Complete the FMM entry form."),
    ("DE", "TH"): ("visa_free", 60, "Proof of onward travel may be requested."),
    ("CA", "JP"): ("visa_free", 90, "Passport valid for the duration of stay."),
    ("CA", "GB"): ("electronic_travel_authorisation", 180, "Apply for a UK ETA online before departure."),
    ("CA", "FR"): ("visa_free", 90, "Schengen rule: 90 days within any 180-day period."),
    ("CA", "MX"): ("visa_free", 180, "Complete the FMM entry form."),
    ("CA", "TH"): ("visa_free", 60, "Proof of onward travel may be requested."),
    ("BR", "FR"): ("visa_free", 90, "Schengen rule: 90 days within any 180-day period."),
    ("BR", "GB"): ("electronic_travel_authorisation", 180, "Apply for a UK ETA online before departure."),
    ("BR", "MX"): ("electronic_authorization", 180, "Electronic authorization or a valid US visa."),
    ("BR", "TH"): ("visa_free", 90, "Proof of onward travel may be requested."),
    ("IN", "TH"): ("visa_free", 60, "Proof of onward travel may be requested."),
}

CABINS = ("economy", "premium_economy", "business", "first")
CABIN_FACTORS = {"economy": 1.0, "premium_economy": 1.7, "business": 3.8, "first": 6.5}
ROOM_TYPES = ("standard_queen", "standard_twin", "deluxe_king", "junior_suite", "family_room")
ROOM_RATES = {"standard_queen": 1.0, "standard_twin": 1.0, "deluxe_king": 1.35, "junior_suite": 1.9,
              "family_room": 1.5}
AMENITIES = ("wifi", "pool", "parking", "gym", "breakfast", "pet-friendly", "spa", "airport-shuttle")
PROPERTY_TYPES = ("any", "hotel", "apartment", "hostel", "guesthouse")


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))




def _datetime(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"{name} must be an RFC 3339 date-time such as 2025-05-09T07:30:00+01:00, "
                         f"got {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name} must include a UTC offset, got {value!r}")
    return parsed


def _airport(code: str, name: str) -> tuple[str, float, float, str, int, int]:
    if not isinstance(code, str) or code.upper() not in AIRPORTS:
        raise ValueError(f"{name}: unknown airport code {code!r}; known codes: {', '.join(sorted(AIRPORTS))}")
    return AIRPORTS[code.upper()]


def search_flights(
    origin: str,
    destination: str,
    depart_date: str,
    passengers: int = 1,
    cabin: str = "economy",
    max_stops: int = 1,
    flexible_days: int = 0,
) -> dict[str, Any]:
    """Return deterministic sample flight offers between two known airports."""
    org, dst = _airport(origin, "origin"), _airport(destination, "destination")
    if origin.upper() == destination.upper():
        raise ValueError("origin and destination must differ")
    day = parse_date(depart_date, "depart_date")
    int_in_range(passengers, 1, 9, "passengers")
    one_of(cabin, CABINS, "cabin")
    int_in_range(max_stops, 0, 2, "max_stops")
    int_in_range(flexible_days, 0, 3, "flexible_days")
    distance = _haversine_km(org[1], org[2], dst[1], dst[2])
    endpoints = (origin.upper(), destination.upper())
    hubs = [code for code in ("FRA", "DXB", "ORD", "AMS", "SIN", "ICN") if code not in endpoints]
    offers = []
    for offset in range(-flexible_days, flexible_days + 1):
        date = day + dt.timedelta(days=offset)
        rng = seeded_rng("flight", origin.upper(), destination.upper(), date.isoformat())
        for _ in range(6):
            stops = rng.choice((0, 0, 1, 1, 1, 2))
            if stops > max_stops:
                continue
            via = rng.sample(hubs, stops)
            minutes = int(distance / 830 * 60 + 35 + stops * rng.randint(80, 190))
            dep = dt.datetime.combine(date, dt.time(rng.randint(6, 22), rng.choice((0, 15, 30, 45))))
            carrier = CARRIERS[org[3]] if rng.random() < 0.6 else CARRIERS[dst[3]]
            base = (60 + distance * 0.085) * (1 - 0.12 * stops) * rng.uniform(0.85, 1.3)
            offers.append({
                "flight_number": f"{carrier}{rng.randint(10, 2999)}",
                "departure_local": dep.isoformat(timespec="minutes"),
                "duration_minutes": minutes,
                "stops": stops,
                "via": via,
                "cabin": cabin,
                "price_per_passenger": round(base * CABIN_FACTORS[cabin], 2),
                "price_total": round(base * CABIN_FACTORS[cabin] * passengers, 2),
            })
    offers.sort(key=lambda o: (o["price_total"], o["duration_minutes"]))
    return {
        "origin": origin.upper(),
        "destination": destination.upper(),
        "depart_date": day.isoformat(),
        "great_circle_km": round(distance, 1),
        "passengers": passengers,
        "currency": "USD",
        "offers": offers,
    }


def flight_status(flight_number: str, date: str, include_aircraft: bool = False) -> dict[str, Any]:
    """Return a deterministic sample status for a flight on a date."""
    if not isinstance(flight_number, str) or not re.fullmatch(r"[A-Z0-9]{2}\d{1,4}", flight_number.upper()):
        raise ValueError(f"flight_number must look like BA283 (airline code + 1-4 digits), got {flight_number!r}")
    day = parse_date(date, "date")
    rng = seeded_rng("status", flight_number.upper(), day.isoformat())
    origin, destination = rng.sample(sorted(AIRPORTS), 2)
    status = rng.choices(["scheduled", "on_time", "delayed", "departed", "landed", "cancelled"],
                         weights=[3, 5, 3, 2, 2, 1])[0]
    delay = rng.choice((15, 25, 40, 75, 130)) if status == "delayed" else 0
    dep = dt.datetime.combine(day, dt.time(rng.randint(5, 22), rng.choice((0, 10, 25, 40, 55))))
    result: dict[str, Any] = {
        "flight_number": flight_number.upper(),
        "date": day.isoformat(),
        "origin": origin,
        "destination": destination,
        "status": status,
        "scheduled_departure_local": dep.isoformat(timespec="minutes"),
        "estimated_departure_local": (dep + dt.timedelta(minutes=delay)).isoformat(timespec="minutes"),
        "delay_minutes": delay,
        "terminal": rng.choice(["1", "2", "3", "4", "5", "A", "B", "C"]),
        "gate": f"{rng.choice('ABCDEFG')}{rng.randint(1, 60)}" if status != "cancelled" else None,
    }
    if include_aircraft:
        result["aircraft"] = {"type": rng.choice(["A320neo", "A350-900", "B737-800", "B787-9", "B777-300ER"]),
                              "registration": f"N{rng.randint(100, 999)}{rng.choice('ABCDEFGH')}{rng.choice('JKLMN')}"}
    return result


def search_stays(
    city: str,
    check_in: str,
    nights: int,
    guests: int = 2,
    rooms: int = 1,
    min_rating: float = 0,
    amenities: list[str] | None = None,
    max_nightly_rate: float = 0,
    property_type: str = "any",
) -> dict[str, Any]:
    """Return deterministic sample accommodation offers matching the filters."""
    if not isinstance(city, str) or not city.strip():
        raise ValueError("city must be a non-empty string")
    start = parse_date(check_in, "check_in")
    int_in_range(nights, 1, 30, "nights")
    int_in_range(guests, 1, 16, "guests")
    int_in_range(rooms, 1, 8, "rooms")
    if not 0 <= min_rating <= 5:
        raise ValueError(f"min_rating must be between 0 and 5, got {min_rating!r}")
    if max_nightly_rate < 0:
        raise ValueError("max_nightly_rate must be >= 0 (0 means no limit)")
    amenities = list(amenities or [])
    for item in amenities:
        one_of(item, AMENITIES, "amenities item")
    one_of(property_type, PROPERTY_TYPES, "property_type")
    rng = seeded_rng("stays", city.strip().lower(), start.isoformat())
    prefixes = ["Casa", "The", "Grand", "Urban", "Harbour", "Old Town", "Garden", "Riverside"]
    suffixes = {"hotel": ["Hotel", "Suites", "Boutique Hotel", "Palace"], "apartment": ["Apartments", "Lofts"],
                "hostel": ["Hostel", "Backpackers"], "guesthouse": ["Guesthouse", "Inn", "House"]}
    stays = []
    for _ in range(12):
        kind = rng.choice(PROPERTY_TYPES[1:])
        rating = round(rng.uniform(3.2, 4.95), 1)
        rate = round(rng.uniform(45, 420) * (0.45 if kind == "hostel" else 1.0), 2)
        features = sorted(rng.sample(AMENITIES, rng.randint(2, 6)))
        if property_type != "any" and kind != property_type:
            continue
        if rating < min_rating or (max_nightly_rate and rate > max_nightly_rate):
            continue
        if not set(amenities) <= set(features):
            continue
        stays.append({
            "hotel_id": f"HTL-{rng.randint(10000, 99999)}",
            "name": f"{rng.choice(prefixes)} {city.strip().title()} {rng.choice(suffixes[kind])}",
            "property_type": kind,
            "rating": rating,
            "nightly_rate": rate,
            "total_price": round(rate * nights * rooms, 2),
            "amenities": features,
            "distance_to_center_km": round(rng.uniform(0.2, 9.5), 1),
        })
    stays.sort(key=lambda s: (-s["rating"], s["nightly_rate"]))
    return {
        "city": city.strip(),
        "check_in": start.isoformat(),
        "check_out": (start + dt.timedelta(days=nights)).isoformat(),
        "guests": guests,
        "rooms": rooms,
        "currency": "USD",
        "results": stays[:6],
    }


def reserve_room(
    hotel_id: str,
    check_in: str,
    check_out: str,
    guest: dict[str, str],
    room_type: str = "standard_queen",
    special_requests: str = "",
) -> dict[str, Any]:
    """Validate a room reservation request and return a deterministic confirmation."""
    if not isinstance(hotel_id, str) or not re.fullmatch(r"HTL-\d{4,6}", hotel_id):
        raise ValueError(f"hotel_id must look like HTL-20417, got {hotel_id!r}")
    start, end = parse_date(check_in, "check_in"), parse_date(check_out, "check_out")
    nights = (end - start).days
    if nights < 1:
        raise ValueError("check_out must be after check_in")
    if nights > 30:
        raise ValueError("stays longer than 30 nights must be booked as long-term rentals")
    one_of(room_type, ROOM_TYPES, "room_type")
    fields = guest if isinstance(guest, dict) else {}
    for key in ("first_name", "last_name", "email"):
        if not isinstance(fields.get(key), str) or not fields[key].strip():
            raise ValueError(f"guest.{key} is required")
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", guest["email"]):
        raise ValueError(f"guest.email is not a valid email address: {guest['email']!r}")
    rng = seeded_rng("reserve", hotel_id, start.isoformat())
    rate = round(rng.uniform(90, 260) * ROOM_RATES[room_type], 2)
    code = hashlib.sha256(json.dumps([hotel_id, check_in, check_out, guest, room_type]).encode()).hexdigest()
    return {
        "confirmation_code": code[:8].upper(),
        "hotel_id": hotel_id,
        "guest_name": f"{guest['first_name']} {guest['last_name']}",
        "email": guest["email"],
        "room_type": room_type,
        "check_in": start.isoformat(),
        "check_out": end.isoformat(),
        "nights": nights,
        "nightly_rate": rate,
        "total_price": round(rate * nights, 2),
        "currency": "USD",
        "special_requests": special_requests,
        "status": "confirmed",
    }


def search_trains(
    from_station: str,
    to_station: str,
    departure: str,
    travel_class: str = "standard",
    passengers: int = 1,
    railcard: bool = False,
) -> dict[str, Any]:
    """Return deterministic sample train departures between two known European stations."""
    for name, value in (("from_station", from_station), ("to_station", to_station)):
        if value not in STATIONS:
            raise ValueError(f"{name}: unknown station {value!r}; known: {', '.join(sorted(STATIONS))}")
    if from_station == to_station:
        raise ValueError("from_station and to_station must differ")
    when = _datetime(departure, "departure")
    one_of(travel_class, ("standard", "first"), "travel_class")
    int_in_range(passengers, 1, 9, "passengers")
    (lat1, lon1), (lat2, lon2) = STATIONS[from_station], STATIONS[to_station]
    rail_km = _haversine_km(lat1, lon1, lat2, lon2) * 1.18
    rng = seeded_rng("trains", from_station, to_station, when.date().isoformat())
    fare_factor = (1.6 if travel_class == "first" else 1.0) * (0.67 if railcard else 1.0)
    trains = []
    start = when
    for _ in range(4):
        start += dt.timedelta(minutes=rng.choice((25, 40, 55, 70, 95)))
        changes = rng.choice((0, 0, 1, 1, 2))
        minutes = int(rail_km / rng.uniform(140, 230) * 60 + changes * 18)
        fare = round((25 + rail_km * rng.uniform(0.09, 0.16)) * fare_factor, 2)
        trains.append({
            "train": f"{rng.choice(['ICE', 'TGV', 'EC', 'RJX', 'ES'])} {rng.randint(100, 9999)}",
            "departs": start.isoformat(timespec="minutes"),
            "arrives": (start + dt.timedelta(minutes=minutes)).isoformat(timespec="minutes"),
            "duration_minutes": minutes,
            "changes": changes,
            "fare_per_passenger": fare,
            "fare_total": round(fare * passengers, 2),
        })
    return {"from_station": from_station, "to_station": to_station, "travel_class": travel_class,
            "railcard_applied": railcard, "currency": "EUR", "rail_distance_km": round(rail_km), "trains": trains}


def estimate_trip_budget(
    destination: str, nights: int, travelers: int = 1, travel_style: str = "moderate"
) -> dict[str, Any]:
    """Estimate on-the-ground trip cost from a fixed table of daily city costs."""
    if destination not in CITY_COSTS:
        raise ValueError(f"no cost data for {destination!r}; known cities: {', '.join(sorted(CITY_COSTS))}")
    int_in_range(nights, 1, 90, "nights")
    int_in_range(travelers, 1, 12, "travelers")
    factor = STYLE_FACTORS[one_of(travel_style, tuple(STYLE_FACTORS), "travel_style")]
    lodging, food, transport, activities = CITY_COSTS[destination]
    rooms = math.ceil(travelers / 2)
    days = nights + 1
    breakdown = {
        "lodging": round(lodging * factor * rooms * nights, 2),
        "food": round(food * factor * travelers * days, 2),
        "local_transport": round(transport * factor * travelers * days, 2),
        "activities": round(activities * factor * travelers * days, 2),
    }
    total = round(sum(breakdown.values()), 2)
    return {"destination": destination, "nights": nights, "travelers": travelers, "travel_style": travel_style,
            "rooms": rooms, "currency": "USD", "breakdown": breakdown, "total": total,
            "per_person": round(total / travelers, 2)}


def visa_requirements_lookup(
    passport_country: str, destination_country: str, purpose: str = "tourism", stay_days: int = 14
) -> dict[str, Any]:
    """Look up entry requirements in a small static sample table (not legal advice)."""
    for name, value in (("passport_country", passport_country), ("destination_country", destination_country)):
        if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{2}", value):
            raise ValueError(f"{name} must be an ISO 3166-1 alpha-2 code such as US, got {value!r}")
    if passport_country == destination_country:
        raise ValueError("passport_country and destination_country are the same")
    one_of(purpose, ("tourism", "business", "transit", "study"), "purpose")
    int_in_range(stay_days, 1, 365, "stay_days")
    status, max_days, note = VISA_RULES.get(
        (passport_country, destination_country), ("visa_required", 0, "Apply at the embassy or official e-visa portal.")
    )
    if purpose == "study" and stay_days > 90 and status != "freedom_of_movement":
        status, note = "visa_required", "A student visa is required for study longer than 90 days."
    elif status != "visa_required" and stay_days > max_days:
        status, note = "visa_required", f"Visa-free stays are limited to {max_days} days."
    return {"passport_country": passport_country, "destination_country": destination_country,
            "purpose": purpose, "stay_days": stay_days, "status": status, "max_visa_free_days": max_days,
            "note": note, "source": "static sample table; confirm with the destination's official sources"}


def check_layover(
    airport: str, arrival_time: str, departure_time: str, international: bool = False, recheck_bags: bool = False
) -> dict[str, Any]:
    """Compare a connection time with the airport's minimum connection time."""
    info = _airport(airport, "airport")
    arrive, depart = _datetime(arrival_time, "arrival_time"), _datetime(departure_time, "departure_time")
    layover = int((depart - arrive).total_seconds() // 60)
    if layover <= 0:
        raise ValueError("departure_time must be after arrival_time")
    minimum = info[5] if international else info[4]
    if recheck_bags:
        minimum += 30
    margin = layover - minimum
    verdict = "comfortable" if margin >= 45 else "tight" if margin >= 0 else "too_short"
    return {"airport": airport.upper(), "layover_minutes": layover, "minimum_connection_minutes": minimum,
            "margin_minutes": margin, "verdict": verdict, "overnight": arrive.date() != depart.date()}
