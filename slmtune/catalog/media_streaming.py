"""Implementations of the media_streaming catalog tools (deterministic, side-effect free)."""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from typing import Any

from slmtune.catalog.common import seeded_rng

_GENRES = ("action", "comedy", "drama", "horror", "sci-fi", "thriller", "romance", "animation", "documentary",
           "crime")
_MATURITY = ["all", "7+", "13+", "16+", "18+"]
_ADJ = ["Silent", "Crimson", "Hidden", "Last", "Broken", "Electric", "Northern", "Midnight", "Golden", "Distant"]
_NOUN = ["Harbor", "Signal", "Kingdom", "Frontier", "Orchard", "Protocol", "Tide", "Archive", "Garden", "Circuit"]
# Approximate H.264 bitrates (Mbps) at 30 fps; other codecs scale by their efficiency factor.
_BITRATE_MBPS = {"480p": 1.5, "720p": 3.0, "1080p": 5.0, "1440p": 9.0, "2160p": 16.0}
_CODEC_FACTOR = {"h264": 1.0, "hevc": 0.6, "av1": 0.5}
_FPS_RATIO = {"23.976_to_25": 23.976 / 25, "25_to_23.976": 25 / 23.976, "24_to_25": 24 / 25, "none": 1.0}


def _title(rng: random.Random) -> str:
    """Make a plausible title."""
    return f"The {rng.choice(_ADJ)} {rng.choice(_NOUN)}" if rng.random() < 0.5 else \
        f"{rng.choice(_ADJ)} {rng.choice(_NOUN)}"


def search_titles(query: str, content_type: str = "any", genres: tuple[str, ...] | list[str] = (),
                  release_year_min: int = 1900, max_maturity_rating: str = "18+", limit: int = 10) -> dict[str, Any]:
    """Search the streaming catalogue by keyword and filters."""
    if not query.strip():
        raise ValueError("query must not be empty")
    types = {"any", "movie", "series", "documentary", "special"}
    if content_type not in types:
        raise ValueError(f"content_type must be one of {sorted(types)}")
    bad = [g for g in genres if g not in _GENRES]
    if bad:
        raise ValueError(f"unknown genres {bad}; allowed: {list(_GENRES)}")
    if max_maturity_rating not in _MATURITY:
        raise ValueError(f"max_maturity_rating must be one of {_MATURITY}")
    if not 1900 <= release_year_min <= 2030:
        raise ValueError("release_year_min must be between 1900 and 2030")
    if not 1 <= limit <= 50:
        raise ValueError("limit must be between 1 and 50")
    rng = seeded_rng("titles", query.lower(), content_type, sorted(genres), release_year_min, max_maturity_rating)
    results = []
    for _ in range(rng.randint(0, 25)):
        ctype = rng.choice(["movie", "series", "documentary", "special"]) if content_type == "any" else content_type
        results.append({
            "title_id": f"TTL-{rng.randint(10000, 99999)}",
            "title": _title(rng),
            "type": ctype,
            "year": rng.randint(max(release_year_min, 1950), 2025),
            "genres": sorted(rng.sample(list(genres) or list(_GENRES), k=min(2, len(genres) or 2))),
            "maturity_rating": rng.choice(_MATURITY[:_MATURITY.index(max_maturity_rating) + 1]),
            "seasons": rng.randint(1, 6) if ctype == "series" else None,
            "runtime_minutes": rng.randint(22, 60) if ctype == "series" else rng.randint(75, 165),
            "relevance": round(rng.uniform(0.4, 1.0), 3),
        })
    results.sort(key=lambda r: -r["relevance"])
    return {"query": query, "total": len(results), "results": results[:limit]}


def estimate_stream_bandwidth(resolution: str, duration_minutes: float, fps: int = 30, codec: str = "h264",
                              concurrent_streams: int = 1) -> dict[str, Any]:
    """Estimate the bitrate, data usage and connection speed needed to stream video."""
    if resolution not in _BITRATE_MBPS:
        raise ValueError(f"resolution must be one of {list(_BITRATE_MBPS)}")
    if codec not in _CODEC_FACTOR:
        raise ValueError(f"codec must be one of {list(_CODEC_FACTOR)}")
    if not 24 <= fps <= 120:
        raise ValueError("fps must be between 24 and 120")
    if duration_minutes <= 0:
        raise ValueError("duration_minutes must be > 0")
    if not 1 <= concurrent_streams <= 10:
        raise ValueError("concurrent_streams must be between 1 and 10")
    fps_factor = 1.0 if fps <= 30 else 1.0 + 0.5 * (fps - 30) / 30
    per_stream = _BITRATE_MBPS[resolution] * _CODEC_FACTOR[codec] * fps_factor
    total = per_stream * concurrent_streams
    gigabytes = total * duration_minutes * 60 / 8 / 1000
    return {
        "bitrate_per_stream_mbps": round(per_stream, 2),
        "total_bitrate_mbps": round(total, 2),
        "data_used_gb": round(gigabytes, 2),
        "data_per_hour_gb": round(total * 3600 / 8 / 1000, 2),
        "recommended_connection_mbps": round(total * 1.5, 1),
    }


def recommend_for_profile(profile_id: str, count: int = 10, exclude_watched: bool = True,
                          mood: str = "any") -> dict[str, Any]:
    """Return personalised title recommendations for a viewer profile."""
    if not re.fullmatch(r"PRF-[0-9a-f]{6}", profile_id):
        raise ValueError(f"profile_id must look like PRF-3f9a21, got {profile_id!r}")
    if not 1 <= count <= 50:
        raise ValueError("count must be between 1 and 50")
    moods = {"any": list(_GENRES), "light": ["comedy", "romance", "animation"],
             "intense": ["action", "thriller", "horror", "crime"], "thoughtful": ["drama", "documentary", "sci-fi"],
             "family": ["animation", "comedy", "documentary"]}
    if mood not in moods:
        raise ValueError(f"mood must be one of {sorted(moods)}")
    rng = seeded_rng("recs", profile_id, mood)
    recs = []
    for rank in range(1, count + 1):
        watched = rng.random() < 0.2
        if watched and exclude_watched:
            watched = False
        recs.append({
            "rank": rank,
            "title_id": f"TTL-{rng.randint(10000, 99999)}",
            "title": _title(rng),
            "genre": rng.choice(moods[mood]),
            "match_percent": max(50, 99 - rank * rng.randint(1, 3)),
            "previously_watched": watched,
            "reason": rng.choice(["Because you watched similar titles", "Trending in your region",
                                  "Popular with viewers like you", "New this week"]),
        })
    return {"profile_id": profile_id, "mood": mood, "recommendations": recs}


def _parse_srt(ts: str) -> int:
    """Parse an SRT timestamp HH:MM:SS,mmm into milliseconds."""
    m = re.fullmatch(r"(\d{2}):([0-5]\d):([0-5]\d),(\d{3})", ts)
    if not m:
        raise ValueError(f"timestamp must be HH:MM:SS,mmm, got {ts!r}")
    h, mi, s, ms = (int(g) for g in m.groups())
    return ((h * 60 + mi) * 60 + s) * 1000 + ms


def _format_srt(ms: int) -> str:
    """Format milliseconds as an SRT timestamp."""
    h, rest = divmod(ms, 3600000)
    mi, rest = divmod(rest, 60000)
    s, milli = divmod(rest, 1000)
    return f"{h:02d}:{mi:02d}:{s:02d},{milli:03d}"


def shift_subtitle_timestamps(timestamps: list[str], offset_ms: int,
                              framerate_conversion: str = "none") -> dict[str, Any]:
    """Shift SRT subtitle timestamps by an offset and optionally rescale for a frame-rate change."""
    if framerate_conversion not in _FPS_RATIO:
        raise ValueError(f"framerate_conversion must be one of {list(_FPS_RATIO)}")
    if not timestamps:
        raise ValueError("timestamps must not be empty")
    if abs(offset_ms) > 3600000:
        raise ValueError("offset_ms must be within one hour (+/-3600000)")
    ratio = _FPS_RATIO[framerate_conversion]
    shifted = []
    for ts in timestamps:
        ms = round(_parse_srt(ts) * ratio) + offset_ms
        if ms < 0:
            raise ValueError(f"shifting {ts} by {offset_ms} ms would give a negative timestamp")
        if ms >= 100 * 3600000:
            raise ValueError(f"shifting {ts} gives a timestamp beyond 99:59:59,999")
        shifted.append(_format_srt(ms))
    return {"offset_ms": offset_ms, "framerate_conversion": framerate_conversion, "scale": round(ratio, 6),
            "timestamps": shifted}


def title_analytics(title_id: str, start_date: str, end_date: str,
                    metrics: tuple[str, ...] | list[str] = ("views", "watch_hours"), region: str = "ALL",
                    granularity: str = "week") -> dict[str, Any]:
    """Report audience metrics of a title over a date range as a time series."""
    allowed = {"views", "watch_hours", "completion_rate", "unique_viewers", "avg_watch_minutes"}
    if not metrics or any(m not in allowed for m in metrics):
        raise ValueError(f"metrics must be a non-empty subset of {sorted(allowed)}")
    if granularity not in {"day", "week", "month"}:
        raise ValueError("granularity must be day, week or month")
    if not re.fullmatch(r"TTL-[0-9]{5}", title_id):
        raise ValueError(f"title_id must look like TTL-88412, got {title_id!r}")
    if region != "ALL" and not re.fullmatch(r"[A-Z]{2}", region):
        raise ValueError("region must be ALL or a two-letter ISO country code")
    try:
        start, end = date.fromisoformat(start_date), date.fromisoformat(end_date)
    except (TypeError, ValueError) as exc:
        raise ValueError("start_date and end_date must be YYYY-MM-DD") from exc
    if end < start:
        raise ValueError("end_date must not be before start_date")
    if (end - start).days > 731:
        raise ValueError("the range may span at most two years")
    rng = seeded_rng("analytics", title_id, region)
    base_views = rng.randint(2000, 400000) * (1 if region == "ALL" else rng.uniform(0.02, 0.3))
    series = []
    cursor = start
    step = {"day": 1, "week": 7}.get(granularity)
    while cursor <= end:
        if step:
            nxt = cursor + timedelta(days=step)
        else:
            nxt = date(cursor.year + (cursor.month == 12), cursor.month % 12 + 1, 1)
        days = (min(nxt, end + timedelta(days=1)) - cursor).days
        point_rng = seeded_rng("point", title_id, region, cursor.isoformat())
        views = int(base_views / 7 * days * point_rng.uniform(0.6, 1.4))
        avg_minutes = point_rng.uniform(18, 95)
        values = {
            "views": views,
            "watch_hours": round(views * avg_minutes / 60, 1),
            "completion_rate": round(point_rng.uniform(0.3, 0.9), 3),
            "unique_viewers": int(views * point_rng.uniform(0.6, 0.95)),
            "avg_watch_minutes": round(avg_minutes, 1),
        }
        series.append({"period_start": cursor.isoformat(), **{m: values[m] for m in metrics}})
        cursor = nxt
    totals = {m: sum(p[m] for p in series) for m in metrics if m in {"views", "watch_hours", "unique_viewers"}}
    return {"title_id": title_id, "region": region, "granularity": granularity, "series": series,
            "totals": {k: round(v, 1) for k, v in totals.items()}}


def compute_streaming_royalties(streams: int, rate_per_1000_usd: float = 4.0, label_share_percent: float = 50.0,
                                collaborators: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Compute gross streaming revenue and split it between label, primary artist and collaborators."""
    if streams < 0:
        raise ValueError("streams must be >= 0")
    if not 0 < rate_per_1000_usd <= 100:
        raise ValueError("rate_per_1000_usd must be greater than 0 and at most 100")
    if not 0 <= label_share_percent <= 100:
        raise ValueError("label_share_percent must be between 0 and 100")
    collaborators = list(collaborators or [])
    total_split = 0.0
    for c in collaborators:
        if not c.get("name") or not 0 < c.get("share_percent", 0) <= 100:
            raise ValueError("each collaborator needs a name and a share_percent between 0 and 100")
        total_split += c["share_percent"]
    if total_split > 100:
        raise ValueError(f"collaborator shares add up to {total_split}%, more than 100%")
    gross = streams / 1000 * rate_per_1000_usd
    label = gross * label_share_percent / 100
    artist_pool = gross - label
    payouts = [{"name": c["name"], "share_percent": c["share_percent"],
                "amount_usd": round(artist_pool * c["share_percent"] / 100, 2)} for c in collaborators]
    return {
        "gross_revenue_usd": round(gross, 2),
        "label_amount_usd": round(label, 2),
        "artist_pool_usd": round(artist_pool, 2),
        "primary_artist_usd": round(artist_pool * (100 - total_split) / 100, 2),
        "collaborator_payouts": payouts,
    }
