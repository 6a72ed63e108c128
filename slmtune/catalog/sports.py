"""Implementations of the sports catalog tools (deterministic, side-effect free)."""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from typing import Any

from slmtune.catalog.common import seeded_rng

_TEAMS: dict[str, list[str]] = {
    "premier_league": ["Arsenal", "Aston Villa", "Bournemouth", "Brentford", "Brighton & Hove Albion", "Chelsea",
                       "Crystal Palace", "Everton", "Fulham", "Ipswich Town", "Leicester City", "Liverpool",
                       "Manchester City", "Manchester United", "Newcastle United", "Nottingham Forest",
                       "Southampton", "Tottenham Hotspur", "West Ham United", "Wolverhampton Wanderers"],
    "la_liga": ["Alaves", "Athletic Club", "Atletico Madrid", "Barcelona", "Celta Vigo", "Espanyol", "Getafe",
                "Girona", "Las Palmas", "Leganes", "Mallorca", "Osasuna", "Rayo Vallecano", "Real Betis",
                "Real Madrid", "Real Sociedad", "Sevilla", "Valencia", "Real Valladolid", "Villarreal"],
    "bundesliga": ["Augsburg", "Bayer Leverkusen", "Bayern Munich", "Bochum", "Borussia Dortmund",
                   "Borussia Monchengladbach", "Eintracht Frankfurt", "Freiburg", "Heidenheim", "Hoffenheim",
                   "Holstein Kiel", "Mainz 05", "RB Leipzig", "St. Pauli", "Stuttgart", "Union Berlin",
                   "Werder Bremen", "Wolfsburg"],
    "serie_a": ["Atalanta", "Bologna", "Cagliari", "Como", "Empoli", "Fiorentina", "Genoa", "Hellas Verona",
                "Inter Milan", "Juventus", "Lazio", "Lecce", "AC Milan", "Monza", "Napoli", "Parma", "Roma",
                "Torino", "Udinese", "Venezia"],
    "nba": ["Atlanta Hawks", "Boston Celtics", "Brooklyn Nets", "Charlotte Hornets", "Chicago Bulls",
            "Cleveland Cavaliers", "Dallas Mavericks", "Denver Nuggets", "Detroit Pistons", "Golden State Warriors",
            "Houston Rockets", "Indiana Pacers", "LA Clippers", "Los Angeles Lakers", "Memphis Grizzlies",
            "Miami Heat", "Milwaukee Bucks", "Minnesota Timberwolves", "New Orleans Pelicans", "New York Knicks",
            "Oklahoma City Thunder", "Orlando Magic", "Philadelphia 76ers", "Phoenix Suns",
            "Portland Trail Blazers", "Sacramento Kings", "San Antonio Spurs", "Toronto Raptors", "Utah Jazz",
            "Washington Wizards"],
}
_SEASON_GAMES = {"premier_league": 38, "la_liga": 38, "bundesliga": 34, "serie_a": 38, "nba": 82}
_PYTHAGOREAN_EXPONENT = {"baseball": 1.83, "basketball": 13.91, "football": 2.37, "hockey": 2.0}
_VENUES = ["Riverside Stadium", "North End Park", "Harbour Arena", "Civic Field", "Lakeside Ground"]


def update_elo_ratings(rating_a: int, rating_b: int, result: str, k_factor: int = 32,
                       home_advantage: int = 0) -> dict[str, Any]:
    """Update two Elo ratings after a game between player or team A and B."""
    scores = {"win": 1.0, "draw": 0.5, "loss": 0.0}
    if result not in scores:
        raise ValueError("result must be 'win', 'draw' or 'loss' (from A's point of view)")
    for name, value in (("rating_a", rating_a), ("rating_b", rating_b)):
        if not 100 <= value <= 3500:
            raise ValueError(f"{name} must be between 100 and 3500")
    if not 1 <= k_factor <= 100:
        raise ValueError("k_factor must be between 1 and 100")
    if not 0 <= home_advantage <= 200:
        raise ValueError("home_advantage must be between 0 and 200")
    expected_a = 1 / (1 + 10 ** ((rating_b - (rating_a + home_advantage)) / 400))
    score_a = scores[result]
    delta = k_factor * (score_a - expected_a)
    return {
        "expected_score_a": round(expected_a, 4),
        "expected_score_b": round(1 - expected_a, 4),
        "new_rating_a": round(rating_a + delta),
        "new_rating_b": round(rating_b - delta),
        "change_a": round(delta, 2),
        "change_b": round(-delta, 2),
    }


def get_standings(league: str, season: str, top_n: int = 20) -> dict[str, Any]:
    """Return the league table of a season."""
    if league not in _TEAMS:
        raise ValueError(f"league must be one of {sorted(_TEAMS)}")
    if not re.fullmatch(r"(19|20)[0-9]{2}-[0-9]{2}", season):
        raise ValueError(f"season must look like 2024-25, got {season!r}")
    start, end = int(season[:4]), int(season[:2] + season[5:])
    if end != start + 1:
        raise ValueError(f"season {season!r} must span two consecutive years, e.g. 2024-25")
    if not 1 <= top_n <= 30:
        raise ValueError("top_n must be between 1 and 30")
    rng = seeded_rng("standings", league, season)
    played = _SEASON_GAMES[league] if start < 2025 else rng.randint(8, _SEASON_GAMES[league] - 4)
    rows = []
    for team in _TEAMS[league]:
        strength = rng.random()
        if league == "nba":
            wins = min(played, max(0, round(played * (0.15 + 0.7 * strength) + rng.uniform(-4, 4))))
            rows.append({"team": team, "played": played, "wins": wins, "losses": played - wins,
                         "win_pct": round(wins / played, 3)})
        else:
            wins = min(played, max(0, round(played * (0.1 + 0.6 * strength) + rng.uniform(-2, 2))))
            draws = min(played - wins, rng.randint(3, 12))
            losses = played - wins - draws
            goals_for = round(wins * 2.1 + draws * 1.0 + losses * 0.6 + rng.uniform(0, 6))
            goals_against = round(losses * 2.0 + draws * 1.0 + wins * 0.5 + rng.uniform(0, 6))
            rows.append({"team": team, "played": played, "wins": wins, "draws": draws, "losses": losses,
                         "goals_for": goals_for, "goals_against": goals_against,
                         "goal_difference": goals_for - goals_against, "points": 3 * wins + draws})
    if league == "nba":
        rows.sort(key=lambda r: (-r["win_pct"], r["team"]))
    else:
        rows.sort(key=lambda r: (-r["points"], -r["goal_difference"], -r["goals_for"], r["team"]))
    for i, row in enumerate(rows, 1):
        row["position"] = i
    return {"league": league, "season": season, "table": rows[:top_n]}


def list_fixtures(team: str, from_date: str, to_date: str, competition: str = "all",
                  home_only: bool = False) -> dict[str, Any]:
    """List a team's scheduled matches between two dates."""
    if competition not in {"all", "league", "cup", "continental"}:
        raise ValueError("competition must be one of all, league, cup, continental")
    try:
        start, end = date.fromisoformat(from_date), date.fromisoformat(to_date)
    except (TypeError, ValueError) as exc:
        raise ValueError("from_date and to_date must be YYYY-MM-DD") from exc
    if end < start:
        raise ValueError("to_date must not be before from_date")
    if (end - start).days > 366:
        raise ValueError("the date range may span at most 366 days")
    league = next((lg for lg, teams in _TEAMS.items() if team in teams), None)
    pool = [t for t in _TEAMS.get(league or "premier_league", []) if t != team]
    rng = seeded_rng("fixtures", team, from_date, to_date)
    matches = []
    day = start + timedelta(days=rng.randint(0, 4))
    while day <= end:
        comp = "league" if league == "nba" else rng.choice(["league", "league", "league", "cup", "continental"])
        home = rng.random() < 0.5
        if (competition == "all" or comp == competition) and (home or not home_only):
            hour = rng.choice([12, 15, 17, 19, 20]) if league != "nba" else rng.choice([19, 19, 20, 22])
            matches.append({
                "date": day.isoformat(),
                "kickoff_local": f"{hour:02d}:{rng.choice(['00', '30'])}",
                "competition": comp,
                "home_team": team if home else rng.choice(pool),
                "away_team": rng.choice(pool) if home else team,
                "venue": f"{team} home ground" if home else rng.choice(_VENUES),
            })
        day += timedelta(days=rng.randint(2, 8))
    return {"team": team, "from_date": from_date, "to_date": to_date, "count": len(matches), "matches": matches}


def _parse_duration(text: str) -> int:
    """Parse H:MM:SS or MM:SS into seconds."""
    m = re.fullmatch(r"(?:(\d{1,2}):)?([0-5]?\d):([0-5]\d)", text)
    if not m:
        raise ValueError(f"finish_time must be H:MM:SS or MM:SS, got {text!r}")
    hours = int(m.group(1) or 0)
    return hours * 3600 + int(m.group(2)) * 60 + int(m.group(3))


def _fmt(seconds: float) -> str:
    """Format seconds as H:MM:SS."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def compute_running_pace(distance_km: float, finish_time: str,
                         predict_distances_km: tuple[float, ...] | list[float] = (5, 10, 21.0975, 42.195)
                         ) -> dict[str, Any]:
    """Compute running pace and speed, and predict race times with Riegel's formula."""
    if not 0.1 <= distance_km <= 400:
        raise ValueError("distance_km must be between 0.1 and 400")
    seconds = _parse_duration(finish_time)
    if seconds <= 0:
        raise ValueError("finish_time must be longer than zero")
    if any(d <= 0 for d in predict_distances_km):
        raise ValueError("predict_distances_km must all be > 0")
    per_km = seconds / distance_km
    return {
        "pace_per_km": _fmt(per_km)[2:] if per_km < 3600 else _fmt(per_km),
        "pace_per_mile": _fmt(per_km * 1.609344)[2:] if per_km * 1.609344 < 3600 else _fmt(per_km * 1.609344),
        "speed_kmh": round(distance_km / (seconds / 3600), 2),
        "predictions": [{"distance_km": d, "time": _fmt(seconds * (d / distance_km) ** 1.06)}
                        for d in predict_distances_km],
    }


def compute_passer_rating(completions: int, attempts: int, passing_yards: int, touchdowns: int,
                          interceptions: int) -> dict[str, Any]:
    """Compute the NFL/CFL passer rating from a quarterback's passing line."""
    if attempts <= 0:
        raise ValueError("attempts must be > 0")
    if not 0 <= completions <= attempts:
        raise ValueError("completions must be between 0 and attempts")
    if touchdowns < 0 or interceptions < 0 or touchdowns > completions or interceptions > attempts:
        raise ValueError("touchdowns must be between 0 and completions, interceptions between 0 and attempts")

    def clamp(x: float) -> float:
        return max(0.0, min(2.375, x))

    a = clamp((completions / attempts - 0.3) * 5)
    b = clamp((passing_yards / attempts - 3) * 0.25)
    c = clamp(touchdowns / attempts * 20)
    d = clamp(2.375 - interceptions / attempts * 25)
    rating = (a + b + c + d) / 6 * 100
    return {
        "passer_rating": round(rating, 1),
        "completion_percent": round(completions / attempts * 100, 1),
        "yards_per_attempt": round(passing_yards / attempts, 2),
        "components": {"completion": round(a, 4), "yards": round(b, 4), "touchdowns": round(c, 4),
                       "interceptions": round(d, 4)},
        "perfect": math.isclose(rating, 158.3333, abs_tol=0.01),
    }


def project_fantasy_points(stats: dict[str, float], scoring: str = "ppr",
                           bonus_100_yards: bool = False) -> dict[str, Any]:
    """Score a player's stat line under standard, half-PPR or PPR fantasy football rules."""
    per_reception = {"standard": 0.0, "half_ppr": 0.5, "ppr": 1.0}
    if scoring not in per_reception:
        raise ValueError("scoring must be standard, half_ppr or ppr")
    keys = ("rushing_yards", "receiving_yards", "receptions", "touchdowns")
    missing = [k for k in keys if k not in stats]
    if missing:
        raise ValueError(f"stats is missing {missing}")
    if stats["receptions"] < 0 or stats["touchdowns"] < 0:
        raise ValueError("receptions and touchdowns must be >= 0")
    parts = {
        "rushing_yards": stats["rushing_yards"] * 0.1,
        "receiving_yards": stats["receiving_yards"] * 0.1,
        "receptions": stats["receptions"] * per_reception[scoring],
        "touchdowns": stats["touchdowns"] * 6.0,
        "bonus": 0.0,
    }
    if bonus_100_yards:
        parts["bonus"] = 3.0 * ((stats["rushing_yards"] >= 100) + (stats["receiving_yards"] >= 100))
    return {"scoring": scoring, "points": round(sum(parts.values()), 2),
            "breakdown": {k: round(v, 2) for k, v in parts.items()}}


def pythagorean_expectation(points_for: int, points_against: int, games_played: int,
                            sport: str = "baseball") -> dict[str, Any]:
    """Estimate a team's expected winning percentage from points scored and allowed."""
    if sport not in _PYTHAGOREAN_EXPONENT:
        raise ValueError(f"sport must be one of {sorted(_PYTHAGOREAN_EXPONENT)}")
    if points_for < 0 or points_against < 0 or points_for + points_against == 0:
        raise ValueError("points_for and points_against must be >= 0 and not both zero")
    if not 1 <= games_played <= 200:
        raise ValueError("games_played must be between 1 and 200")
    exp = _PYTHAGOREAN_EXPONENT[sport]
    pct = points_for ** exp / (points_for ** exp + points_against ** exp)
    return {
        "sport": sport,
        "exponent": exp,
        "expected_win_pct": round(pct, 4),
        "expected_wins": round(pct * games_played, 1),
        "expected_losses": round((1 - pct) * games_played, 1),
        "point_differential_per_game": round((points_for - points_against) / games_played, 2),
    }
