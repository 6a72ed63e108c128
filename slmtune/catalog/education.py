"""Implementations of the education catalog tools (deterministic, side-effect free)."""

from __future__ import annotations

import re
from typing import Any

from slmtune.catalog.common import seeded_rng

_GRADE_POINTS_40 = {"A+": 4.0, "A": 4.0, "A-": 3.7, "B+": 3.3, "B": 3.0, "B-": 2.7, "C+": 2.3, "C": 2.0,
                    "C-": 1.7, "D+": 1.3, "D": 1.0, "D-": 0.7, "F": 0.0}
_GRADE_POINTS_43 = {**_GRADE_POINTS_40, "A+": 4.3}
_LETTER_CUTOFFS = [(97, "A+"), (93, "A"), (90, "A-"), (87, "B+"), (83, "B"), (80, "B-"), (77, "C+"), (73, "C"),
                   (70, "C-"), (67, "D+"), (63, "D"), (60, "D-"), (0, "F")]
_DEFAULT_WEIGHTS = {"homework": 20.0, "quizzes": 10.0, "midterm": 30.0, "final": 40.0}
_COMPONENTS = ("homework", "quizzes", "midterm", "final")

_FIRST = ["Amara", "Ben", "Camila", "Dev", "Emma", "Felix", "Gia", "Hassan", "Isla", "Jamal", "Kenji", "Lena",
          "Mateo", "Nora", "Omar", "Paige", "Quinn", "Rosa", "Sami", "Tara"]
_LAST = ["Adeyemi", "Brooks", "Castillo", "Dubois", "Eriksen", "Fischer", "Gupta", "Hall", "Ito", "Jensen",
         "Kim", "Lopez", "Murphy", "Nguyen", "Olsen", "Park", "Quispe", "Russo"]


def _letter(percent: float) -> str:
    """Map a percentage to a letter grade on the common US scale."""
    for cutoff, letter in _LETTER_CUTOFFS:
        if percent >= cutoff:
            return letter
    return "F"


def compute_gpa(grades: list[str], credit_hours: list[float], scale: str = "4.0") -> dict[str, Any]:
    """Compute a credit-weighted grade point average from letter grades."""
    table = {"4.0": _GRADE_POINTS_40, "4.3": _GRADE_POINTS_43}.get(scale)
    if table is None:
        raise ValueError("scale must be '4.0' or '4.3'")
    if not grades:
        raise ValueError("grades must contain at least one grade")
    if len(grades) != len(credit_hours):
        raise ValueError(f"grades has {len(grades)} entries but credit_hours has {len(credit_hours)}; "
                         "give one credit value per grade")
    unknown = [g for g in grades if g not in table]
    if unknown:
        raise ValueError(f"unknown letter grades: {unknown}")
    if any(c <= 0 for c in credit_hours):
        raise ValueError("every credit_hours entry must be > 0")
    quality = sum(table[g] * c for g, c in zip(grades, credit_hours, strict=True))
    credits = float(sum(credit_hours))
    return {
        "gpa": round(quality / credits, 3),
        "scale": scale,
        "total_credits": round(credits, 2),
        "quality_points": round(quality, 2),
        "courses": [{"grade": g, "credits": c, "points": table[g]} for g, c in zip(grades, credit_hours, strict=True)],
    }


def compute_weighted_grade(scores: dict[str, float], weights: dict[str, float] | None = None) -> dict[str, Any]:
    """Combine homework, quiz, midterm and final scores into a weighted course grade."""
    weights = dict(_DEFAULT_WEIGHTS if weights is None else weights)
    for name, mapping in (("scores", scores), ("weights", weights)):
        missing = [c for c in _COMPONENTS if c not in mapping]
        if missing:
            raise ValueError(f"{name} is missing {missing}")
    for c in _COMPONENTS:
        if not 0 <= scores[c] <= 100:
            raise ValueError(f"scores.{c} must be between 0 and 100")
        if weights[c] < 0:
            raise ValueError(f"weights.{c} must be >= 0")
    total_weight = sum(weights[c] for c in _COMPONENTS)
    if abs(total_weight - 100) > 0.01:
        raise ValueError(f"weights must add up to 100 percent, got {total_weight}")
    percent = sum(scores[c] * weights[c] for c in _COMPONENTS) / 100
    return {
        "weighted_percent": round(percent, 2),
        "letter_grade": _letter(percent),
        "contributions": {c: round(scores[c] * weights[c] / 100, 2) for c in _COMPONENTS},
        "weights_used": weights,
    }


def compute_final_exam_needed(current_grade_percent: float, final_weight_percent: float,
                              target_grade_percent: float) -> dict[str, Any]:
    """Compute the final-exam score needed to reach a target course grade."""
    if not 0 <= current_grade_percent <= 100:
        raise ValueError("current_grade_percent must be between 0 and 100")
    if not 0 < final_weight_percent < 100:
        raise ValueError("final_weight_percent must be strictly between 0 and 100")
    if not 0 <= target_grade_percent <= 100:
        raise ValueError("target_grade_percent must be between 0 and 100")
    w = final_weight_percent / 100
    needed = (target_grade_percent - current_grade_percent * (1 - w)) / w
    return {
        "required_final_percent": round(needed, 2),
        "achievable": needed <= 100,
        "already_secured": needed <= 0,
        "grade_if_final_is_100": round(current_grade_percent * (1 - w) + 100 * w, 2),
        "grade_if_final_is_0": round(current_grade_percent * (1 - w), 2),
    }


def get_gradebook(course_id: str, section: str = "", include_dropped: bool = False,
                  sort_by: str = "last_name") -> dict[str, Any]:
    """Return the current gradebook of a course section from the LMS."""
    if sort_by not in {"last_name", "grade_desc", "grade_asc"}:
        raise ValueError("sort_by must be one of last_name, grade_desc, grade_asc")
    if not re.fullmatch(r"[A-Z]{2,5}-[0-9]{3}[A-Z]?", course_id):
        raise ValueError(f"course_id must look like CS-101 or BIO-210, got {course_id!r}")
    rng = seeded_rng("gradebook", course_id, section)
    students = []
    for i in range(rng.randint(12, 28)):
        pct = round(min(100.0, max(35.0, rng.gauss(82, 9))), 1)
        dropped = rng.random() < 0.08
        students.append({
            "student_id": f"STU-{2021 + i % 4}-{rng.randint(1000, 9999):04d}",
            "first_name": rng.choice(_FIRST),
            "last_name": rng.choice(_LAST),
            "percent": pct,
            "letter_grade": _letter(pct),
            "missing_assignments": max(0, int(rng.gauss(1, 1.2))),
            "enrollment_status": "dropped" if dropped else "active",
        })
    if not include_dropped:
        students = [s for s in students if s["enrollment_status"] == "active"]
    if sort_by == "last_name":
        students.sort(key=lambda s: (s["last_name"], s["first_name"]))
    else:
        students.sort(key=lambda s: s["percent"], reverse=sort_by == "grade_desc")
    mean = sum(s["percent"] for s in students) / len(students) if students else 0.0
    return {"course_id": course_id, "section": section or "all", "student_count": len(students),
            "class_average": round(mean, 2), "students": students}


def find_tutors(subject: str, level: str, max_hourly_rate: float = 150.0, online_only: bool = False,
                languages: tuple[str, ...] | list[str] = ("English",)) -> dict[str, Any]:
    """Find tutors for a subject and level within a budget."""
    levels = {"elementary", "middle_school", "high_school", "undergraduate", "graduate"}
    if level not in levels:
        raise ValueError(f"level must be one of {sorted(levels)}")
    if max_hourly_rate < 10:
        raise ValueError("max_hourly_rate must be at least 10")
    if not languages:
        raise ValueError("languages must name at least one language")
    rng = seeded_rng("tutors", subject.lower(), level, online_only, sorted(languages))
    tutors = []
    for _ in range(rng.randint(2, 9)):
        rate = round(rng.uniform(20, 140), 0)
        if rate > max_hourly_rate:
            continue
        tutors.append({
            "tutor_id": f"TUT-{rng.randint(1000, 9999)}",
            "name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
            "subject": subject,
            "level": level,
            "hourly_rate_usd": rate,
            "rating": round(rng.uniform(4.0, 5.0), 1),
            "sessions_completed": rng.randint(5, 900),
            "online": True if online_only else rng.random() < 0.6,
            "languages": sorted(rng.sample(list(languages), k=rng.randint(1, len(languages)))),
        })
    tutors.sort(key=lambda t: (-t["rating"], t["hourly_rate_usd"]))
    return {"subject": subject, "level": level, "count": len(tutors), "tutors": tutors}


def _syllables(word: str) -> int:
    """Estimate the syllables of an English word with a vowel-group heuristic."""
    w = word.lower()
    groups = re.findall(r"[aeiouy]+", w)
    count = len(groups)
    if w.endswith("e") and not w.endswith(("le", "ee")) and count > 1:
        count -= 1
    return max(count, 1)


def compute_reading_level(text: str) -> dict[str, Any]:
    """Compute Flesch reading ease and Flesch-Kincaid grade level of a passage."""
    words = re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)?", text)
    if len(words) < 3:
        raise ValueError("text must contain at least three words")
    sentences = max(1, len(re.findall(r"[.!?]+", text)))
    syllables = sum(_syllables(w) for w in words)
    wps = len(words) / sentences
    spw = syllables / len(words)
    ease = 206.835 - 1.015 * wps - 84.6 * spw
    grade = 0.39 * wps + 11.8 * spw - 15.59
    if ease >= 80:
        band = "easy"
    elif ease >= 60:
        band = "standard"
    elif ease >= 30:
        band = "difficult"
    else:
        band = "very difficult"
    return {
        "words": len(words),
        "sentences": sentences,
        "syllables": syllables,
        "flesch_reading_ease": round(ease, 1),
        "flesch_kincaid_grade": round(grade, 1),
        "difficulty": band,
    }
