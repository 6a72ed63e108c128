"""Implementations of the science_lab catalog tools (deterministic, side-effect free)."""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from typing import Any

from slmtune.catalog.common import seeded_rng

# IUPAC conventional standard atomic weights (g/mol); mass number of the longest-lived isotope where none.
_ATOMIC_WEIGHTS = {
    "H": 1.008, "He": 4.0026, "Li": 6.94, "Be": 9.0122, "B": 10.81, "C": 12.011, "N": 14.007, "O": 15.999,
    "F": 18.998, "Ne": 20.180, "Na": 22.990, "Mg": 24.305, "Al": 26.982, "Si": 28.085, "P": 30.974, "S": 32.06,
    "Cl": 35.45, "Ar": 39.948, "K": 39.098, "Ca": 40.078, "Sc": 44.956, "Ti": 47.867, "V": 50.942, "Cr": 51.996,
    "Mn": 54.938, "Fe": 55.845, "Co": 58.933, "Ni": 58.693, "Cu": 63.546, "Zn": 65.38, "Ga": 69.723, "Ge": 72.630,
    "As": 74.922, "Se": 78.971, "Br": 79.904, "Kr": 83.798, "Rb": 85.468, "Sr": 87.62, "Y": 88.906, "Zr": 91.224,
    "Nb": 92.906, "Mo": 95.95, "Tc": 98.0, "Ru": 101.07, "Rh": 102.91, "Pd": 106.42, "Ag": 107.87, "Cd": 112.41,
    "In": 114.82, "Sn": 118.71, "Sb": 121.76, "Te": 127.60, "I": 126.90, "Xe": 131.29, "Cs": 132.91, "Ba": 137.33,
    "La": 138.91, "Ce": 140.12, "Pr": 140.91, "Nd": 144.24, "Pm": 145.0, "Sm": 150.36, "Eu": 151.96, "Gd": 157.25,
    "Tb": 158.93, "Dy": 162.50, "Ho": 164.93, "Er": 167.26, "Tm": 168.93, "Yb": 173.05, "Lu": 174.97, "Hf": 178.49,
    "Ta": 180.95, "W": 183.84, "Re": 186.21, "Os": 190.23, "Ir": 192.22, "Pt": 195.08, "Au": 196.97, "Hg": 200.59,
    "Tl": 204.38, "Pb": 207.2, "Bi": 208.98, "Po": 209.0, "At": 210.0, "Rn": 222.0, "Fr": 223.0, "Ra": 226.0,
    "Ac": 227.0, "Th": 232.04, "Pa": 231.04, "U": 238.03,
}
# pKa at 25 C and its temperature coefficient (per degree C) for common biological buffers.
_BUFFERS = {"acetate": (4.76, 0.0002), "mes": (6.15, -0.011), "bicarbonate": (6.35, -0.0055),
            "phosphate": (7.20, -0.0028), "hepes": (7.48, -0.014), "tris": (8.06, -0.028)}
_VOLUME_TO_ML = {"uL": 0.001, "mL": 1.0, "L": 1000.0}
_LOCATIONS = ["cold_room", "freezer_minus20", "freezer_minus80", "flammables_cabinet", "shelf"]
_VENDORS = ["Sigma-Aldrich", "Thermo Fisher", "VWR", "TCI", "Alfa Aesar", "Merck"]


def _parse_formula(formula: str) -> dict[str, float]:
    """Count atoms in a formula with (), [] groups and hydrate dots, e.g. CuSO4·5H2O."""
    parts = re.split(r"[·*]|\.(?=\d*[A-Z(\[])", formula.replace(" ", ""))
    total: dict[str, float] = {}
    for part in parts:
        if not part:
            raise ValueError(f"malformed formula {formula!r}")
        m = re.match(r"^(\d+)(.*)$", part)
        mult, body = (int(m.group(1)), m.group(2)) if m else (1, part)
        for el, n in _parse_group(body, formula).items():
            total[el] = total.get(el, 0) + n * mult
    return total


def _parse_group(text: str, original: str) -> dict[str, float]:
    """Parse a formula without hydrate dots using a stack for nested groups."""
    stack: list[dict[str, float]] = [{}]
    closers = {")": "(", "]": "["}
    openers: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            stack.append({})
            openers.append(ch)
            i += 1
        elif ch in ")]":
            if not openers or openers.pop() != closers[ch]:
                raise ValueError(f"unbalanced brackets in formula {original!r}")
            i += 1
            m = re.match(r"\d+", text[i:])
            n = int(m.group()) if m else 1
            i += len(m.group()) if m else 0
            group = stack.pop()
            for el, c in group.items():
                stack[-1][el] = stack[-1].get(el, 0) + c * n
        else:
            m = re.match(r"([A-Z][a-z]?)(\d*)", text[i:])
            if not m:
                raise ValueError(f"unexpected character {ch!r} in formula {original!r}")
            el = m.group(1)
            if el not in _ATOMIC_WEIGHTS:
                raise ValueError(f"unknown element {el!r} in formula {original!r}")
            stack[-1][el] = stack[-1].get(el, 0) + (int(m.group(2)) if m.group(2) else 1)
            i += len(m.group())
    if openers:
        raise ValueError(f"unbalanced brackets in formula {original!r}")
    return stack[0]


def molar_mass(formula: str) -> dict[str, Any]:
    """Compute the molar mass and mass composition of a chemical formula."""
    if not formula.strip():
        raise ValueError("formula must not be empty")
    counts = _parse_formula(formula)
    if not counts:
        raise ValueError(f"no elements found in {formula!r}")
    mass = sum(_ATOMIC_WEIGHTS[el] * n for el, n in counts.items())
    return {
        "formula": formula,
        "molar_mass_g_per_mol": round(mass, 3),
        "atoms": {el: counts[el] for el in sorted(counts)},
        "mass_percent": {el: round(_ATOMIC_WEIGHTS[el] * counts[el] / mass * 100, 2) for el in sorted(counts)},
    }


def dilution(stock_concentration: float, target_concentration: float, final_volume: float,
             volume_unit: str = "mL", concentration_unit: str = "mM") -> dict[str, Any]:
    """Compute stock and diluent volumes for a dilution with C1V1 = C2V2."""
    if volume_unit not in _VOLUME_TO_ML:
        raise ValueError(f"volume_unit must be one of {list(_VOLUME_TO_ML)}")
    if concentration_unit not in {"M", "mM", "uM", "nM", "percent", "mg_per_mL"}:
        raise ValueError("concentration_unit must be M, mM, uM, nM, percent or mg_per_mL")
    if stock_concentration <= 0 or target_concentration <= 0 or final_volume <= 0:
        raise ValueError("concentrations and final_volume must be > 0")
    if target_concentration > stock_concentration:
        raise ValueError("target_concentration cannot exceed stock_concentration")
    stock_volume = target_concentration * final_volume / stock_concentration
    return {
        "stock_volume": round(stock_volume, 4),
        "diluent_volume": round(final_volume - stock_volume, 4),
        "volume_unit": volume_unit,
        "dilution_factor": round(stock_concentration / target_concentration, 4),
        "concentration_unit": concentration_unit,
    }


def compute_buffer_ph(buffer: str, acid_concentration_mm: float, base_concentration_mm: float,
                      temperature_c: float = 25.0) -> dict[str, Any]:
    """Compute a buffer's pH with the Henderson-Hasselbalch equation and a temperature-corrected pKa."""
    if buffer not in _BUFFERS:
        raise ValueError(f"buffer must be one of {sorted(_BUFFERS)}")
    if acid_concentration_mm <= 0 or base_concentration_mm <= 0:
        raise ValueError("acid and base concentrations must be > 0 mM")
    if not 0 <= temperature_c <= 60:
        raise ValueError("temperature_c must be between 0 and 60")
    pka25, dpka = _BUFFERS[buffer]
    pka = pka25 + dpka * (temperature_c - 25)
    ratio = base_concentration_mm / acid_concentration_mm
    ph = pka + math.log10(ratio)
    return {
        "buffer": buffer,
        "pka_at_temperature": round(pka, 3),
        "base_to_acid_ratio": round(ratio, 4),
        "ph": round(ph, 2),
        "total_concentration_mm": round(acid_concentration_mm + base_concentration_mm, 3),
        "within_buffering_range": abs(ph - pka) <= 1.0,
    }


def search_reagents(query: str, location: str = "any", include_expired: bool = False,
                    limit: int = 20) -> dict[str, Any]:
    """Search the lab's chemical inventory by name or CAS number."""
    if len(query.strip()) < 2:
        raise ValueError("query must have at least two characters")
    if location != "any" and location not in _LOCATIONS:
        raise ValueError(f"location must be any or one of {_LOCATIONS}")
    if not 1 <= limit <= 100:
        raise ValueError("limit must be between 1 and 100")
    rng = seeded_rng("reagents", query.lower())
    items = []
    for _ in range(rng.randint(0, 12)):
        expires = date(2024, 6, 1) + timedelta(days=rng.randint(0, 1100))
        expired = expires < date(2025, 6, 1)
        loc = location if location != "any" else rng.choice(_LOCATIONS)
        if expired and not include_expired:
            continue
        items.append({
            "container_id": f"CHEM-{rng.randint(10000, 99999)}",
            "name": query if not re.fullmatch(r"\d{2,7}-\d{2}-\d", query) else f"Reagent {query}",
            "vendor": rng.choice(_VENDORS),
            "quantity": round(rng.uniform(1, 1000), 1),
            "unit": rng.choice(["g", "mL", "mg"]),
            "location": loc,
            "shelf": f"{rng.choice('ABCDEF')}{rng.randint(1, 12)}",
            "expires_on": expires.isoformat(),
            "expired": expired,
        })
    return {"query": query, "count": len(items[:limit]), "containers": items[:limit]}


def convert_centrifuge_speed(value: float, from_unit: str, rotor_radius_cm: float) -> dict[str, Any]:
    """Convert between rotor speed (rpm) and relative centrifugal force (x g)."""
    if from_unit not in {"rpm", "xg"}:
        raise ValueError("from_unit must be 'rpm' or 'xg'")
    if value <= 0:
        raise ValueError("value must be > 0")
    if not 1 <= rotor_radius_cm <= 50:
        raise ValueError("rotor_radius_cm must be between 1 and 50")
    k = 1.118e-5 * rotor_radius_cm
    if from_unit == "rpm":
        return {"rpm": value, "rcf_xg": round(k * value ** 2, 1), "rotor_radius_cm": rotor_radius_cm}
    return {"rcf_xg": value, "rpm": round(math.sqrt(value / k)), "rotor_radius_cm": rotor_radius_cm}


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the regularized incomplete beta function (Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(c) > tiny else 1 + aa / tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(c) > tiny else 1 + aa / tiny
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(ln_front) * _betacf(a, b, x) / a
    return 1 - math.exp(ln_front) * _betacf(b, a, 1 - x) / b


def two_sample_ttest(sample_a: list[float], sample_b: list[float], equal_variance: bool = False,
                     alternative: str = "two_sided") -> dict[str, Any]:
    """Run Student's or Welch's two-sample t-test on two groups of measurements."""
    if alternative not in {"two_sided", "less", "greater"}:
        raise ValueError("alternative must be two_sided, less or greater")
    na, nb = len(sample_a), len(sample_b)
    if na < 2 or nb < 2:
        raise ValueError("each sample needs at least two values")
    ma, mb = sum(sample_a) / na, sum(sample_b) / nb
    va = sum((x - ma) ** 2 for x in sample_a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in sample_b) / (nb - 1)
    if va == 0 and vb == 0:
        raise ValueError("both samples have zero variance; the t statistic is undefined")
    if equal_variance:
        df = na + nb - 2
        pooled = ((na - 1) * va + (nb - 1) * vb) / df
        se = math.sqrt(pooled * (1 / na + 1 / nb))
    else:
        se = math.sqrt(va / na + vb / nb)
        df = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    t = (ma - mb) / se
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))  # P(T > |t|)
    if alternative == "two_sided":
        p = 2 * tail
    elif alternative == "greater":
        p = tail if t > 0 else 1 - tail
    else:
        p = tail if t < 0 else 1 - tail
    return {
        "test": "student" if equal_variance else "welch",
        "alternative": alternative,
        "mean_a": round(ma, 6),
        "mean_b": round(mb, 6),
        "t_statistic": round(t, 4),
        "degrees_of_freedom": round(df, 3),
        "p_value": float(f"{min(max(p, 0.0), 1.0):.6g}"),
        "significant_at_0_05": p < 0.05,
    }


def primer_tm(forward_primer: str, reverse_primer: str, method: str = "salt_adjusted",
              na_concentration_mm: float = 50.0) -> dict[str, Any]:
    """Compute primer melting temperatures and suggest a PCR annealing temperature."""
    if method not in {"basic", "salt_adjusted"}:
        raise ValueError("method must be basic or salt_adjusted")
    if not 1 <= na_concentration_mm <= 1000:
        raise ValueError("na_concentration_mm must be between 1 and 1000")
    results = {}
    for name, seq in (("forward", forward_primer), ("reverse", reverse_primer)):
        s = seq.upper()
        if not re.fullmatch(r"[ACGT]{10,60}", s):
            raise ValueError(f"{name}_primer must be 10 to 60 bases of A, C, G and T")
        n, gc = len(s), s.count("G") + s.count("C")
        if method == "basic":
            tm = 2 * (n - gc) + 4 * gc if n < 14 else 64.9 + 41 * (gc - 16.4) / n
        else:
            tm = 81.5 + 16.6 * math.log10(na_concentration_mm / 1000) + 0.41 * (gc / n * 100) - 675 / n
        results[name] = {"length": n, "gc_percent": round(gc / n * 100, 1), "tm_c": round(tm, 1)}
    low = min(results["forward"]["tm_c"], results["reverse"]["tm_c"])
    diff = abs(results["forward"]["tm_c"] - results["reverse"]["tm_c"])
    return {
        "method": method,
        "forward": results["forward"],
        "reverse": results["reverse"],
        "tm_difference_c": round(diff, 1),
        "suggested_annealing_c": round(low - 5, 1),
        "warning": "Tm values differ by more than 5 C; consider redesigning a primer." if diff > 5 else None,
    }
