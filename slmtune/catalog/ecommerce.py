"""E-commerce tools: catalog search, product details, cart, orders, returns, coupons, shipping and reviews."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from slmtune.catalog.common import int_in_range, number_in_range, one_of, seeded_rng

CATEGORIES = ("all", "electronics", "home_kitchen", "clothing", "sports_outdoors", "beauty", "toys", "books",
              "grocery")
SORTS = ("relevance", "price_asc", "price_desc", "rating", "newest")
BRANDS = ("Northwind", "Acmea", "Sonora", "Keystone", "Bluepeak", "Lumio", "Vantage", "Orchard & Co")
RETURN_REASONS = ("damaged", "wrong_item", "no_longer_needed", "doesnt_fit", "not_as_described")

# code -> (kind, value, minimum subtotal, maximum discount or None)
COUPONS: dict[str, tuple[str, float, float, float | None]] = {
    "SAVE10": ("percent", 10, 50, None),
    "WELCOME15": ("percent", 15, 0, 30),
    "BULK20": ("percent", 20, 200, None),
    "TAKE5": ("fixed", 5, 25, None),
    "FREESHIP": ("free_shipping", 0, 35, None),
}

# zone -> per-service (base price USD, price per billable kg, transit days)
SHIPPING_ZONES: dict[str, dict[str, tuple[float, float, str]]] = {
    "domestic": {"standard": (5.5, 1.1, "3-5"), "express": (12.0, 2.2, "2"), "priority": (24.0, 3.5, "1")},
    "north_america": {"standard": (14.0, 3.0, "6-10"), "express": (32.0, 5.5, "3-4"), "priority": (48.0, 7.5, "2")},
    "europe": {"standard": (19.0, 4.8, "7-14"), "express": (42.0, 7.9, "3-5"), "priority": (62.0, 10.5, "2-3")},
    "asia_pacific": {"standard": (21.0, 5.4, "8-15"), "express": (45.0, 8.6, "3-5"), "priority": (68.0, 11.0, "2-3")},
    "rest_of_world": {"standard": (24.0, 6.2, "10-21"), "express": (52.0, 9.8, "4-6"), "priority": (75.0, 12.5, "3")},
}
ZONE_OF: dict[str, str] = {
    "US": "domestic", "CA": "north_america", "MX": "north_america",
    **{c: "europe" for c in ("GB", "IE", "FR", "DE", "NL", "BE", "ES", "IT", "PT", "SE", "NO", "DK", "PL", "AT", "CH")},
    **{c: "asia_pacific" for c in ("JP", "KR", "CN", "SG", "AU", "NZ", "IN", "HK", "TW", "TH", "PH")},
}


def _id(value: str, prefix: str, name: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(rf"{prefix}-\d{{4,6}}", value):
        raise ValueError(f"{name} must look like {prefix}-48213, got {value!r}")
    return value


def _product(sku: str) -> dict[str, Any]:
    """Deterministic sample product record for a SKU."""
    rng = seeded_rng("product", sku)
    category = rng.choice(CATEGORIES[1:])
    nouns = {
        "electronics": ["Wireless Earbuds", "4K Streaming Stick", "USB-C Charger 65W", "Smart Speaker"],
        "home_kitchen": ["Cast Iron Skillet", "Pour-Over Coffee Set", "Air Fryer 5.8 qt", "Linen Duvet Cover"],
        "clothing": ["Merino Crew Sweater", "Rain Shell Jacket", "Chino Trousers", "Trail Running Socks"],
        "sports_outdoors": ["Yoga Mat 6 mm", "Insulated Water Bottle", "2-Person Tent", "Adjustable Dumbbells"],
        "beauty": ["Vitamin C Serum", "Mineral Sunscreen SPF 50", "Hair Dryer Ionic", "Clay Face Mask"],
        "toys": ["Wooden Train Set", "STEM Robot Kit", "1000-Piece Puzzle", "Plush Otter"],
        "books": ["Field Guide to Birds", "Sourdough Baking Handbook", "Modern Data Engineering", "Atlas of Islands"],
        "grocery": ["Single-Origin Coffee Beans", "Extra Virgin Olive Oil", "Matcha Powder", "Dark Chocolate 85%"],
    }[category]
    return {
        "product_id": sku, "name": f"{rng.choice(BRANDS)} {rng.choice(nouns)}", "category": category,
        "price": round(rng.uniform(6, 320), 2), "rating": round(rng.uniform(3.1, 4.9), 1),
        "review_count": rng.randint(3, 9000), "in_stock": rng.random() > 0.2,
    }


def search_catalog(
    query: str,
    category: str = "all",
    min_price: float = 0,
    max_price: float = 0,
    sort_by: str = "relevance",
    in_stock_only: bool = False,
    page: int = 1,
) -> dict[str, Any]:
    """Return deterministic sample products matching a text query and filters."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty search phrase")
    one_of(category, CATEGORIES, "category")
    lo = number_in_range(min_price, 0, 1e6, "min_price")
    hi = number_in_range(max_price, 0, 1e6, "max_price")
    if hi and hi < lo:
        raise ValueError("max_price must be 0 (no limit) or at least min_price")
    one_of(sort_by, SORTS, "sort_by")
    int_in_range(page, 1, 50, "page")
    rng = seeded_rng("search", query.strip().lower(), category)
    department = category if category != "all" else rng.choice(CATEGORIES[1:])
    variants = ["", " Pro", " Lite", " 2-Pack", " XL", " (2025 model)", " Travel Edition", " Plus"]
    items = []
    for i in range(24):
        price = round(rng.uniform(8, 400), 2)
        item = {
            "product_id": f"SKU-{rng.randint(10000, 99999)}",
            "name": f"{rng.choice(BRANDS)} {query.strip().title()}{rng.choice(variants)}",
            "category": department,
            "price": price,
            "rating": round(rng.uniform(2.8, 4.9), 1),
            "review_count": rng.randint(0, 12000),
            "in_stock": rng.random() > 0.25,
            "listed_days_ago": rng.randint(1, 900),
            "relevance": round(1 - i / 30 + rng.uniform(-0.05, 0.05), 3),
        }
        if item["price"] < lo or (hi and item["price"] > hi) or (in_stock_only and not item["in_stock"]):
            continue
        items.append(item)
    key = {"relevance": lambda x: -x["relevance"], "price_asc": lambda x: x["price"],
           "price_desc": lambda x: -x["price"], "rating": lambda x: (-x["rating"], -x["review_count"]),
           "newest": lambda x: x["listed_days_ago"]}[sort_by]
    items.sort(key=key)
    per_page = 5
    pages = max(1, math.ceil(len(items) / per_page))
    return {"query": query.strip(), "total_results": len(items), "page": page, "pages": pages,
            "results": items[(page - 1) * per_page: page * per_page]}


def get_product(product_id: str, include_specs: bool = False, zip_code: str = "") -> dict[str, Any]:
    """Return deterministic sample details for one product."""
    _id(product_id, "SKU", "product_id")
    if zip_code and not re.fullmatch(r"\d{5}", zip_code):
        raise ValueError(f"zip_code must be a 5-digit US ZIP code, got {zip_code!r}")
    item = _product(product_id)
    rng = seeded_rng("details", product_id)
    item["description"] = f"{item['name']}: dependable everyday quality from a trusted brand."
    if include_specs:
        item["specs"] = {"weight_kg": round(rng.uniform(0.05, 12), 2), "warranty_months": rng.choice((6, 12, 24)),
                         "color_options": rng.sample(["black", "white", "navy", "sage", "sand", "red"], 3)}
    if zip_code:
        item["delivery_estimate_days"] = 1 + int(zip_code) % 5 if item["in_stock"] else None
    return item


def add_item(cart_id: str, product_id: str, quantity: int = 1, gift_wrap: bool = False) -> dict[str, Any]:
    """Add a product to a shopping cart and return the updated line and cart subtotal."""
    _id(cart_id, "CRT", "cart_id")
    _id(product_id, "SKU", "product_id")
    int_in_range(quantity, 1, 99, "quantity")
    item = _product(product_id)
    if not item["in_stock"]:
        return {"cart_id": cart_id, "added": False, "reason": "out_of_stock", "product_id": product_id}
    wrap_fee = 4.99 if gift_wrap else 0.0
    line_total = round(item["price"] * quantity + wrap_fee, 2)
    existing = round(seeded_rng("cart", cart_id).uniform(0, 150), 2)
    return {"cart_id": cart_id, "added": True,
            "line": {"product_id": product_id, "name": item["name"], "unit_price": item["price"],
                     "quantity": quantity, "gift_wrap": gift_wrap, "line_total": line_total},
            "cart_subtotal": round(existing + line_total, 2), "currency": "USD"}


def track_shipment(order_id: str, include_history: bool = False) -> dict[str, Any]:
    """Return a deterministic sample tracking status for an order."""
    _id(order_id, "ORD", "order_id")
    rng = seeded_rng("track", order_id)
    steps = ["label_created", "picked_up", "in_transit", "out_for_delivery", "delivered"]
    reached = rng.randint(0, len(steps) - 1)
    carrier = rng.choice(["UPS", "FedEx", "USPS", "DHL"])
    result: dict[str, Any] = {
        "order_id": order_id, "carrier": carrier,
        "tracking_number": f"1Z{rng.randint(10**9, 10**10 - 1)}" if carrier == "UPS"
        else str(rng.randint(10**11, 10**12 - 1)),
        "status": steps[reached],
        "estimated_delivery_in_days": max(0, 4 - reached),
    }
    if include_history:
        cities = ["Memphis, TN", "Louisville, KY", "Columbus, OH", "Reno, NV", "Dallas, TX", "Newark, NJ"]
        result["history"] = [{"event": s, "location": rng.choice(cities), "day": i + 1}
                             for i, s in enumerate(steps[: reached + 1])]
    return result


def request_return(
    order_id: str, items: list[dict[str, Any]], reason: str, refund_method: str = "original_payment"
) -> dict[str, Any]:
    """Open a return for some items of an order and estimate the refund."""
    _id(order_id, "ORD", "order_id")
    if not isinstance(items, list) or not items:
        raise ValueError("items must be a non-empty list of {sku, quantity} objects")
    one_of(reason, RETURN_REASONS, "reason")
    one_of(refund_method, ("original_payment", "store_credit"), "refund_method")
    lines, refund = [], 0.0
    for i, entry in enumerate(items):
        line = entry if isinstance(entry, dict) else {}
        sku = _id(line.get("sku"), "SKU", f"items[{i}].sku")
        qty = int_in_range(line.get("quantity"), 1, 20, f"items[{i}].quantity")
        price = _product(sku)["price"]
        lines.append({"sku": sku, "quantity": qty, "refund": round(price * qty, 2)})
        refund += price * qty
    restocking = 0.0 if reason in ("damaged", "wrong_item", "not_as_described") else round(refund * 0.1, 2)
    bonus = round((refund - restocking) * 0.05, 2) if refund_method == "store_credit" else 0.0
    rma = hashlib.sha256(json.dumps([order_id, items, reason]).encode()).hexdigest()[:6].upper()
    return {"return_id": f"RMA-{rma}", "order_id": order_id, "reason": reason, "items": lines,
            "prepaid_label": reason in ("damaged", "wrong_item", "not_as_described"),
            "restocking_fee": restocking, "store_credit_bonus": bonus,
            "refund_total": round(refund - restocking + bonus, 2), "refund_method": refund_method}


def apply_coupon(subtotal: float, coupon_code: str, shipping_cost: float = 0) -> dict[str, Any]:
    """Apply a promotion code to an order subtotal and return the new totals."""
    sub = number_in_range(subtotal, 0, 1e7, "subtotal")
    ship = number_in_range(shipping_cost, 0, 1e4, "shipping_cost")
    code = str(coupon_code).strip().upper()
    if code not in COUPONS:
        raise ValueError(f"unknown coupon code {coupon_code!r}")
    kind, value, minimum, cap = COUPONS[code]
    base = {"coupon_code": code, "subtotal": sub, "shipping_cost": ship}
    if sub < minimum:
        return {**base, "applied": False, "reason": f"requires a subtotal of at least {minimum:.2f}",
                "discount": 0.0, "total": round(sub + ship, 2)}
    if kind == "percent":
        discount = sub * value / 100
        if cap is not None:
            discount = min(discount, cap)
    elif kind == "fixed":
        discount = min(value, sub)
    else:
        discount = ship
    return {**base, "applied": True, "discount": round(discount, 2), "total": round(sub + ship - discount, 2)}


def parcel_shipping_quote(
    weight_kg: float, dimensions: dict[str, float], destination_country: str, service: str = "standard"
) -> dict[str, Any]:
    """Quote a parcel shipment from the US using billable (actual vs dimensional) weight and zone rates."""
    weight = number_in_range(weight_kg, 0.01, 70, "weight_kg")
    dims = dimensions if isinstance(dimensions, dict) else {}
    length, width, height = (number_in_range(dims.get(k), 1, 200, f"dimensions.{k}")
                             for k in ("length_cm", "width_cm", "height_cm"))
    if not isinstance(destination_country, str) or not re.fullmatch(r"[A-Z]{2}", destination_country):
        raise ValueError(f"destination_country must be an ISO 3166-1 alpha-2 code, got {destination_country!r}")
    one_of(service, ("standard", "express", "priority"), "service")
    dim_weight = length * width * height / 5000
    billable = math.ceil(max(weight, dim_weight) * 2) / 2
    zone = ZONE_OF.get(destination_country, "rest_of_world")
    base, per_kg, days = SHIPPING_ZONES[zone][service]
    return {"destination_country": destination_country, "zone": zone, "service": service,
            "actual_weight_kg": weight, "dimensional_weight_kg": round(dim_weight, 2),
            "billable_weight_kg": billable, "price": round(base + per_kg * billable, 2), "currency": "USD",
            "transit_business_days": days}


def list_for_product(
    product_id: str, min_stars: int = 1, sort: str = "most_helpful", limit: int = 10, verified_only: bool = False
) -> dict[str, Any]:
    """Return deterministic sample customer reviews for a product."""
    _id(product_id, "SKU", "product_id")
    int_in_range(min_stars, 1, 5, "min_stars")
    one_of(sort, ("most_helpful", "most_recent", "highest", "lowest"), "sort")
    int_in_range(limit, 1, 50, "limit")
    rng = seeded_rng("reviews", product_id)
    titles = {5: "Exceeded expectations", 4: "Solid, a few quirks", 3: "It's fine", 2: "Disappointed",
              1: "Broke within a week"}
    reviews = []
    for i in range(40):
        stars = rng.choices((1, 2, 3, 4, 5), weights=(1, 1, 2, 4, 6))[0]
        review = {"review_id": f"RV-{rng.randint(100000, 999999)}", "stars": stars, "title": titles[stars],
                  "verified_purchase": rng.random() > 0.15, "helpful_votes": rng.randint(0, 400),
                  "days_ago": rng.randint(1, 700), "position": i}
        if stars >= min_stars and (review["verified_purchase"] or not verified_only):
            reviews.append(review)
    key = {"most_helpful": lambda r: -r["helpful_votes"], "most_recent": lambda r: r["days_ago"],
           "highest": lambda r: (-r["stars"], -r["helpful_votes"]),
           "lowest": lambda r: (r["stars"], -r["helpful_votes"])}[sort]
    reviews.sort(key=key)
    for r in reviews:
        r.pop("position")
    average = round(sum(r["stars"] for r in reviews) / len(reviews), 2) if reviews else None
    return {"product_id": product_id, "matching_reviews": len(reviews), "average_stars": average,
            "reviews": reviews[:limit]}
