"""Food and recipe tools: scaling, kitchen conversions, recipe search, nutrition, oven temperatures, reservations,
meal plans and roasting times."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from fractions import Fraction
from typing import Any

from slmtune.catalog.common import int_in_range, number_in_range, one_of, seeded_rng

INGREDIENT_UNITS = ("cup", "tbsp", "tsp", "g", "kg", "ml", "l", "oz", "lb", "piece", "pinch", "clove")
VOLUME_ML = {"ml": 1.0, "l": 1000.0, "tsp": 4.92892, "tbsp": 14.7868, "cup": 236.588, "fl_oz": 29.5735}
MASS_G = {"g": 1.0, "kg": 1000.0, "oz": 28.3495, "lb": 453.592}
# grams per millilitre
DENSITY = {"water": 1.0, "milk": 1.03, "all_purpose_flour": 0.528, "granulated_sugar": 0.845, "brown_sugar": 0.93,
           "butter": 0.959, "honey": 1.42, "white_rice": 0.78, "olive_oil": 0.91, "rolled_oats": 0.38}

# food -> per 100 g: kcal, protein g, carbohydrate g, fat g, fibre g
NUTRIENTS: dict[str, tuple[float, float, float, float, float]] = {
    "chicken breast": (165, 31.0, 0.0, 3.6, 0.0), "brown rice": (112, 2.3, 23.5, 0.8, 1.8),
    "broccoli": (34, 2.8, 6.6, 0.4, 2.6), "salmon": (208, 20.0, 0.0, 13.0, 0.0), "egg": (143, 12.6, 0.7, 9.5, 0.0),
    "rolled oats": (389, 16.9, 66.3, 6.9, 10.6), "banana": (89, 1.1, 22.8, 0.3, 2.6),
    "greek yogurt": (97, 9.0, 3.6, 5.0, 0.0), "almonds": (579, 21.2, 21.6, 49.9, 12.5),
    "avocado": (160, 2.0, 8.5, 14.7, 6.7), "whole wheat bread": (247, 13.0, 41.0, 3.4, 7.0),
    "tofu": (144, 17.3, 2.8, 8.7, 2.3), "pasta": (158, 5.8, 30.9, 0.9, 1.8), "olive oil": (884, 0.0, 0.0, 100.0, 0.0),
    "apple": (52, 0.3, 13.8, 0.2, 2.4), "cheddar": (403, 24.9, 1.3, 33.1, 0.0), "lentils": (116, 9.0, 20.1, 0.4, 7.9),
    "sweet potato": (90, 2.0, 20.7, 0.2, 3.3), "spinach": (23, 2.9, 3.6, 0.4, 2.2),
    "whole milk": (61, 3.2, 4.8, 3.3, 0.0),
}

GAS_MARKS = {0.25: 110, 0.5: 120, 1: 140, 2: 150, 3: 170, 4: 180, 5: 190, 6: 200, 7: 220, 8: 230, 9: 240}

# meat -> minutes per kg, extra minutes, resting minutes, target internal °C per doneness (None = not recommended)
ROASTS: dict[str, tuple[float, float, int, dict[str, int | None]]] = {
    "beef": (44, 20, 20, {"rare": 52, "medium_rare": 57, "medium": 63, "well_done": 71}),
    "lamb": (50, 20, 15, {"rare": 52, "medium_rare": 57, "medium": 63, "well_done": 71}),
    "pork": (66, 0, 15, {"rare": None, "medium_rare": None, "medium": 63, "well_done": 71}),
    "chicken": (44, 20, 10, {"rare": None, "medium_rare": None, "medium": None, "well_done": 74}),
    "turkey": (33, 30, 30, {"rare": None, "medium_rare": None, "medium": None, "well_done": 74}),
}
DONENESS_FACTOR = {"rare": 0.82, "medium_rare": 0.9, "medium": 1.0, "well_done": 1.15}

MEALS: list[tuple[str, str, int, frozenset[str], frozenset[str]]] = [
    # (name, slot, kcal per serving, diets it fits, key ingredients)
    ("Overnight oats with berries", "breakfast", 380, frozenset({"omnivore", "vegetarian", "pescatarian"}),
     frozenset({"oats", "milk", "berries"})),
    ("Tofu scramble on toast", "breakfast", 420, frozenset({"omnivore", "vegetarian", "vegan", "pescatarian"}),
     frozenset({"tofu", "bread", "spinach"})),
    ("Spinach and feta omelette", "breakfast", 350, frozenset({"omnivore", "vegetarian", "pescatarian", "keto"}),
     frozenset({"eggs", "spinach", "feta"})),
    ("Greek yogurt parfait", "breakfast", 330, frozenset({"omnivore", "vegetarian", "pescatarian"}),
     frozenset({"yogurt", "granola", "honey"})),
    ("Chia pudding with mango", "breakfast", 360, frozenset({"omnivore", "vegetarian", "vegan", "pescatarian"}),
     frozenset({"chia", "coconut milk", "mango"})),
    ("Lentil and vegetable soup", "lunch", 450, frozenset({"omnivore", "vegetarian", "vegan", "pescatarian"}),
     frozenset({"lentils", "carrots", "celery"})),
    ("Grilled chicken Caesar salad", "lunch", 520, frozenset({"omnivore", "keto"}),
     frozenset({"chicken", "romaine", "parmesan"})),
    ("Tuna nicoise salad", "lunch", 500, frozenset({"omnivore", "pescatarian"}),
     frozenset({"tuna", "eggs", "green beans", "potatoes"})),
    ("Chickpea falafel wrap", "lunch", 560, frozenset({"omnivore", "vegetarian", "vegan", "pescatarian"}),
     frozenset({"chickpeas", "tortilla", "tahini"})),
    ("Caprese quinoa bowl", "lunch", 480, frozenset({"omnivore", "vegetarian", "pescatarian"}),
     frozenset({"quinoa", "mozzarella", "tomatoes"})),
    ("Salmon with roasted vegetables", "dinner", 610, frozenset({"omnivore", "pescatarian", "keto"}),
     frozenset({"salmon", "zucchini", "peppers"})),
    ("Beef and broccoli stir-fry", "dinner", 640, frozenset({"omnivore"}),
     frozenset({"beef", "broccoli", "soy sauce", "rice"})),
    ("Vegetable coconut curry", "dinner", 590, frozenset({"omnivore", "vegetarian", "vegan", "pescatarian"}),
     frozenset({"coconut milk", "chickpeas", "spinach", "rice"})),
    ("Mushroom risotto", "dinner", 620, frozenset({"omnivore", "vegetarian", "pescatarian"}),
     frozenset({"rice", "mushrooms", "parmesan"})),
    ("Zucchini noodles with pesto chicken", "dinner", 540, frozenset({"omnivore", "keto"}),
     frozenset({"zucchini", "chicken", "pesto"})),
    ("Black bean tacos", "dinner", 580, frozenset({"omnivore", "vegetarian", "vegan", "pescatarian"}),
     frozenset({"black beans", "tortilla", "avocado"})),
    ("Hummus with veggie sticks", "snack", 220, frozenset({"omnivore", "vegetarian", "vegan", "pescatarian"}),
     frozenset({"chickpeas", "carrots", "cucumber"})),
    ("Apple with almond butter", "snack", 250, frozenset({"omnivore", "vegetarian", "vegan", "pescatarian"}),
     frozenset({"apple", "almonds"})),
    ("Cheese and olives", "snack", 240, frozenset({"omnivore", "vegetarian", "pescatarian", "keto"}),
     frozenset({"cheese", "olives"})),
    ("Boiled eggs", "snack", 160, frozenset({"omnivore", "vegetarian", "pescatarian", "keto"}), frozenset({"eggs"})),
]
SLOTS_BY_COUNT = {2: ["lunch", "dinner"], 3: ["breakfast", "lunch", "dinner"],
                  4: ["breakfast", "lunch", "snack", "dinner"], 5: ["breakfast", "snack", "lunch", "snack", "dinner"]}
SLOT_SHARE = {"breakfast": 0.25, "lunch": 0.33, "dinner": 0.37, "snack": 0.1}


def _kitchen_amount(quantity: float, unit: str) -> str:
    """Render a quantity the way a cook measures it (fractions for spoons and cups)."""
    if unit in ("cup", "tbsp", "tsp"):
        whole = int(quantity)
        frac = Fraction(quantity - whole).limit_denominator(4)
        if frac == 1:
            whole, frac = whole + 1, Fraction(0)
        text = (f"{whole} " if whole else "") + (f"{frac.numerator}/{frac.denominator}" if frac else "")
        return text.strip() or "0"
    if unit in ("piece", "clove", "pinch"):
        return str(max(1, round(quantity)))
    return f"{round(quantity, 1):g}"


def scale_ingredients(
    ingredients: list[dict[str, Any]], original_servings: int, target_servings: int, kitchen_rounding: bool = True
) -> dict[str, Any]:
    """Scale a recipe's ingredient quantities from one number of servings to another."""
    if not isinstance(ingredients, list) or not ingredients:
        raise ValueError("ingredients must be a non-empty list of {name, quantity, unit} objects")
    int_in_range(original_servings, 1, 100, "original_servings")
    int_in_range(target_servings, 1, 100, "target_servings")
    factor = target_servings / original_servings
    rows = []
    for i, item in enumerate(ingredients):
        entry = item if isinstance(item, dict) else {}
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"ingredients[{i}].name is required")
        qty = number_in_range(entry.get("quantity"), 0.001, 100000, f"ingredients[{i}].quantity")
        unit = one_of(entry.get("unit"), INGREDIENT_UNITS, f"ingredients[{i}].unit")
        scaled = qty * factor
        row: dict[str, Any] = {"name": name, "unit": unit, "original_quantity": qty, "quantity": round(scaled, 3)}
        if kitchen_rounding:
            amount = _kitchen_amount(scaled, unit)
            if unit == "piece":
                row["display"] = f"{amount} {name}"
            else:
                plural = unit in ("cup", "clove", "pinch") and amount not in ("1", "1/2", "1/3", "1/4", "2/3", "3/4")
                row["display"] = f"{amount} {unit}{'s' if plural else ''} {name}"
        rows.append(row)
    return {"factor": round(factor, 4), "servings": target_servings, "ingredients": rows}


def convert_units(quantity: float, from_unit: str, to_unit: str, ingredient: str = "water") -> dict[str, Any]:
    """Convert kitchen quantities between volume and mass units, using ingredient densities across the two."""
    qty = number_in_range(quantity, 0, 1e6, "quantity")
    units = (*VOLUME_ML, *MASS_G)
    one_of(from_unit, units, "from_unit")
    one_of(to_unit, units, "to_unit")
    density = DENSITY[one_of(ingredient, tuple(DENSITY), "ingredient")]
    grams = qty * MASS_G[from_unit] if from_unit in MASS_G else qty * VOLUME_ML[from_unit] * density
    result = grams / MASS_G[to_unit] if to_unit in MASS_G else grams / density / VOLUME_ML[to_unit]
    crosses = (from_unit in MASS_G) != (to_unit in MASS_G)
    return {"quantity": qty, "from_unit": from_unit, "to_unit": to_unit, "result": round(result, 3),
            "ingredient": ingredient, "density_g_per_ml": density if crosses else None}


def find_by_ingredients(
    ingredients: list[str], diet: str = "none", max_total_minutes: int = 60, cuisine: str = "any"
) -> dict[str, Any]:
    """Return deterministic sample recipes that use the given ingredients."""
    if not isinstance(ingredients, list) or not ingredients or not all(isinstance(i, str) and i.strip()
                                                                       for i in ingredients):
        raise ValueError("ingredients must be a non-empty list of ingredient names")
    one_of(diet, ("none", "vegetarian", "vegan", "gluten_free", "keto"), "diet")
    int_in_range(max_total_minutes, 5, 300, "max_total_minutes")
    cuisines = ("italian", "mexican", "indian", "thai", "japanese", "mediterranean")
    if cuisine != "any":
        one_of(cuisine, cuisines, "cuisine")
    key = sorted(i.strip().lower() for i in ingredients)
    rng = seeded_rng("recipes", key, diet, cuisine)
    dishes = {"italian": ["Pasta", "Frittata", "Risotto"], "mexican": ["Tacos", "Quesadillas", "Burrito Bowl"],
              "indian": ["Curry", "Dal", "Masala"], "thai": ["Stir-Fry", "Green Curry", "Noodle Salad"],
              "japanese": ["Donburi", "Miso Soup", "Yakisoba"], "mediterranean": ["Traybake", "Salad", "Flatbread"]}
    results = []
    for _ in range(8):
        style = cuisine if cuisine != "any" else rng.choice(cuisines)
        used = rng.sample(key, min(len(key), rng.randint(1, 3)))
        minutes = rng.choice((15, 20, 25, 30, 40, 45, 55, 70, 90))
        if minutes > max_total_minutes:
            continue
        results.append({"recipe_id": f"RCP-{rng.randint(1000, 9999)}",
                        "title": f"{' & '.join(u.title() for u in used)} {rng.choice(dishes[style])}",
                        "cuisine": style, "diet": diet, "total_minutes": minutes, "uses": used,
                        "missing_ingredients": rng.randint(0, 4), "rating": round(rng.uniform(3.6, 4.9), 1)})
    results.sort(key=lambda r: (r["missing_ingredients"], -r["rating"]))
    return {"ingredients": key, "results": results[:5]}


def meal_macros(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum calories and macronutrients of a meal from a per-100 g nutrition table."""
    if not isinstance(items, list) or not items:
        raise ValueError("items must be a non-empty list of {food, grams} objects")
    rows, totals = [], [0.0] * 5
    for i, item in enumerate(items):
        entry = item if isinstance(item, dict) else {}
        food = str(entry.get("food", "")).strip().lower()
        if food not in NUTRIENTS:
            raise ValueError(f"items[{i}].food: no nutrition data for {entry.get('food')!r}; known: "
                             f"{', '.join(sorted(NUTRIENTS))}")
        grams = number_in_range(entry.get("grams"), 1, 5000, f"items[{i}].grams")
        values = [v * grams / 100 for v in NUTRIENTS[food]]
        totals = [t + v for t, v in zip(totals, values, strict=True)]
        rows.append({"food": food, "grams": grams, "kcal": round(values[0]), "protein_g": round(values[1], 1),
                     "carbs_g": round(values[2], 1), "fat_g": round(values[3], 1)})
    kcal = totals[0]
    split = {k: round(v / kcal * 100, 1) if kcal else 0.0
             for k, v in (("protein", totals[1] * 4), ("carbs", totals[2] * 4), ("fat", totals[3] * 9))}
    return {"items": rows, "total": {"kcal": round(kcal), "protein_g": round(totals[1], 1),
                                     "carbs_g": round(totals[2], 1), "fat_g": round(totals[3], 1),
                                     "fiber_g": round(totals[4], 1)}, "energy_split_pct": split}


def oven_temperature_convert(
    temperature: dict[str, Any], to_scale: str, fan_oven: bool = False
) -> dict[str, Any]:
    """Convert an oven setting between Celsius, Fahrenheit and gas mark, optionally for a fan oven."""
    setting = temperature if isinstance(temperature, dict) else {}
    scale = one_of(setting.get("scale"), ("celsius", "fahrenheit", "gas_mark"), "temperature.scale")
    value = setting.get("value")
    if scale == "gas_mark":
        if value not in GAS_MARKS:
            raise ValueError(f"temperature.value must be a gas mark (1/4, 1/2 or 1-9), got {value!r}")
        celsius = float(GAS_MARKS[value])
    elif scale == "celsius":
        celsius = number_in_range(value, 50, 300, "temperature.value")
    else:
        celsius = (number_in_range(value, 120, 575, "temperature.value") - 32) * 5 / 9
    one_of(to_scale, ("celsius", "fahrenheit", "gas_mark"), "to_scale")
    if fan_oven:
        celsius -= 20
    if to_scale == "celsius":
        result: float = round(celsius / 5) * 5
    elif to_scale == "fahrenheit":
        result = round((celsius * 9 / 5 + 32) / 5) * 5
    else:
        result = min(GAS_MARKS, key=lambda mark: abs(GAS_MARKS[mark] - celsius))
    return {"input": {"value": value, "scale": scale}, "to_scale": to_scale, "result": result,
            "fan_adjusted": fan_oven, "celsius_exact": round(celsius, 1)}


def reserve_table(
    restaurant: str,
    party_size: int,
    datetime: str,
    contact: dict[str, str],
    seating: str = "no_preference",
    occasion: str = "",
) -> dict[str, Any]:
    """Request a restaurant reservation and return a deterministic confirmation."""
    if not isinstance(restaurant, str) or not restaurant.strip():
        raise ValueError("restaurant must be a non-empty name")
    int_in_range(party_size, 1, 20, "party_size")
    try:
        text = datetime[:-1] + "+00:00" if datetime.endswith(("Z", "z")) else datetime
        when = dt.datetime.fromisoformat(text)
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"datetime must be an RFC 3339 date-time, got {datetime!r}") from None
    if when.tzinfo is None:
        raise ValueError("datetime must include a UTC offset")
    if not 11 <= when.hour <= 22:
        raise ValueError("reservations are taken between 11:00 and 22:59 local time")
    person = contact if isinstance(contact, dict) else {}
    if not isinstance(person.get("name"), str) or not person["name"].strip():
        raise ValueError("contact.name is required")
    if not isinstance(person.get("phone"), str) or not re.fullmatch(r"\+?[0-9][0-9 ()-]{6,20}", person["phone"]):
        raise ValueError(f"contact.phone is not a phone number: {person.get('phone')!r}")
    one_of(seating, ("indoor", "outdoor", "bar", "no_preference"), "seating")
    digest = hashlib.sha256(json.dumps([restaurant, party_size, datetime, person]).encode()).hexdigest()
    rng = seeded_rng("table", restaurant.strip().lower(), datetime)
    status = "confirmed" if party_size <= 8 else "pending_approval"
    return {"reservation_id": f"RSV-{digest[:6].upper()}", "restaurant": restaurant.strip(), "status": status,
            "party_size": party_size, "time": when.isoformat(), "seating": seating,
            "table": f"T{rng.randint(1, 40)}", "name": person["name"], "phone": person["phone"], "occasion": occasion,
            "hold_minutes": 15}


def generate_week(
    calories_per_day: int, diet: str = "omnivore", meals_per_day: int = 3, exclude_ingredients: list[str] | None = None
) -> dict[str, Any]:
    """Build a seven-day meal plan from a fixed meal library that fits a diet, exclusions and a calorie target."""
    int_in_range(calories_per_day, 1200, 4000, "calories_per_day")
    one_of(diet, ("omnivore", "vegetarian", "vegan", "pescatarian", "keto"), "diet")
    int_in_range(meals_per_day, 2, 5, "meals_per_day")
    excluded = {e.strip().lower() for e in (exclude_ingredients or []) if isinstance(e, str)}
    pool = [m for m in MEALS if diet in m[3] and not (m[4] & excluded)]
    rng = seeded_rng("plan", calories_per_day, diet, meals_per_day, sorted(excluded))
    slots = SLOTS_BY_COUNT[meals_per_day]
    share_total = sum(SLOT_SHARE[s] for s in slots)
    days = []
    for day in range(1, 8):
        meals = []
        for slot in slots:
            options = [m for m in pool if m[1] == slot]
            if not options:
                raise ValueError(f"no {slot} recipes fit diet {diet!r} with the exclusions {sorted(excluded)}")
            name, _, kcal, _, _ = rng.choice(options)
            target = calories_per_day * SLOT_SHARE[slot] / share_total
            servings = max(0.5, round(target / kcal * 2) / 2)
            meals.append({"slot": slot, "meal": name, "servings": servings, "kcal": round(kcal * servings)})
        days.append({"day": day, "meals": meals, "kcal": sum(m["kcal"] for m in meals)})
    average = round(sum(d["kcal"] for d in days) / 7)
    return {"diet": diet, "target_kcal": calories_per_day, "average_kcal": average, "days": days}


def roast_time_estimate(
    meat: str, weight_kg: float, doneness: str = "medium", oven_celsius: int = 180
) -> dict[str, Any]:
    """Estimate roasting time, resting time and target core temperature for a joint of meat."""
    per_kg, extra, rest, targets = ROASTS[one_of(meat, tuple(ROASTS), "meat")]
    weight = number_in_range(weight_kg, 0.5, 12, "weight_kg")
    one_of(doneness, tuple(DONENESS_FACTOR), "doneness")
    int_in_range(oven_celsius, 150, 230, "oven_celsius")
    applied = doneness
    note = ""
    if targets[doneness] is None:
        applied = next(d for d in ("medium", "well_done") if targets[d] is not None)
        note = f"{meat} should not be served {doneness.replace('_', ' ')}; using {applied.replace('_', ' ')}"
    factor = DONENESS_FACTOR[applied] if meat in ("beef", "lamb", "pork") else 1.0
    minutes = (per_kg * weight + extra) * factor * (180 / oven_celsius) ** 0.8
    return {"meat": meat, "weight_kg": weight, "doneness": applied, "oven_celsius": oven_celsius,
            "roast_minutes": int(math.ceil(minutes / 5) * 5), "rest_minutes": rest,
            "target_core_celsius": targets[applied], "note": note}
