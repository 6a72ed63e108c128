"""Implementations of the devops_cloud catalog tools (deterministic, side-effect free)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from slmtune.catalog.common import seeded_rng

# Approximate on-demand Linux list prices in us-east-1, USD per instance-hour.
_HOURLY_PRICE = {"t3.micro": 0.0104, "t3.large": 0.0832, "m5.xlarge": 0.192, "m6i.2xlarge": 0.384,
                 "c6i.4xlarge": 0.68, "r6g.2xlarge": 0.4032, "g5.xlarge": 1.006}
_REGION_FACTOR = {"us-east-1": 1.0, "us-west-2": 1.0, "eu-west-1": 1.1, "ap-southeast-1": 1.2}
_PRICING_FACTOR = {"on_demand": 1.0, "reserved_1y": 0.62, "reserved_3y": 0.4, "spot": 0.3}
_GP3_PER_GB_MONTH = 0.08
_PERIOD_SECONDS = {"day": 86400.0, "week": 7 * 86400.0, "month": 365.25 / 12 * 86400, "quarter": 365.25 / 4 * 86400,
                   "year": 365.25 * 86400}
_METRICS = {"cpu_utilization": (45.0, 20.0, "percent"), "memory_utilization": (62.0, 12.0, "percent"),
            "request_rate": (850.0, 300.0, "requests/s"), "error_rate": (0.4, 0.3, "percent"),
            "p99_latency_ms": (240.0, 90.0, "ms")}
_MONTHS = {m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                                       "DEC"], 1)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}


def _parse_dt(value: str, name: str) -> datetime:
    """Parse an ISO 8601 date-time; naive values are taken as UTC."""
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an ISO 8601 date-time, got {value!r}") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def scale_deployment(cluster: str, deployment: str, replicas: int, namespace: str = "default",
                     wait_for_rollout: bool = True) -> dict[str, Any]:
    """Set the replica count of a Kubernetes deployment and report the rollout."""
    name_re = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    for label, value in (("cluster", cluster), ("deployment", deployment), ("namespace", namespace)):
        if not re.fullmatch(name_re, value):
            raise ValueError(f"{label} must be a lowercase DNS-1123 name, got {value!r}")
    if not 0 <= replicas <= 500:
        raise ValueError("replicas must be between 0 and 500")
    rng = seeded_rng("deploy", cluster, namespace, deployment)
    previous = rng.randint(1, 12)
    return {
        "cluster": cluster,
        "namespace": namespace,
        "deployment": deployment,
        "previous_replicas": previous,
        "desired_replicas": replicas,
        "ready_replicas": replicas if wait_for_rollout else min(previous, replicas),
        "rollout_status": "complete" if wait_for_rollout else "in_progress",
        "direction": "up" if replicas > previous else "down" if replicas < previous else "unchanged",
    }


def compute_cloud_cost(instance_type: str, instance_count: int = 1, hours_per_month: float = 730.0,
                       pricing: str = "on_demand", region: str = "us-east-1",
                       storage_gb: float = 0.0) -> dict[str, Any]:
    """Estimate the monthly cost of a fleet of virtual machines from a fixed price table."""
    if instance_type not in _HOURLY_PRICE:
        raise ValueError(f"instance_type must be one of {sorted(_HOURLY_PRICE)}")
    if region not in _REGION_FACTOR:
        raise ValueError(f"region must be one of {sorted(_REGION_FACTOR)}")
    if pricing not in _PRICING_FACTOR:
        raise ValueError(f"pricing must be one of {sorted(_PRICING_FACTOR)}")
    if not 1 <= instance_count <= 1000:
        raise ValueError("instance_count must be between 1 and 1000")
    if not 1 <= hours_per_month <= 744:
        raise ValueError("hours_per_month must be between 1 and 744")
    if storage_gb < 0:
        raise ValueError("storage_gb must be >= 0")
    hourly = _HOURLY_PRICE[instance_type] * _REGION_FACTOR[region] * _PRICING_FACTOR[pricing]
    compute = hourly * hours_per_month * instance_count
    storage = storage_gb * _GP3_PER_GB_MONTH * _REGION_FACTOR[region] * instance_count
    on_demand = _HOURLY_PRICE[instance_type] * _REGION_FACTOR[region] * hours_per_month * instance_count
    return {
        "hourly_rate_per_instance": round(hourly, 5),
        "compute_monthly_usd": round(compute, 2),
        "storage_monthly_usd": round(storage, 2),
        "total_monthly_usd": round(compute + storage, 2),
        "total_yearly_usd": round((compute + storage) * 12, 2),
        "savings_vs_on_demand_usd": round(on_demand - compute, 2),
    }


def query_metrics(service: str, metric: str, start: str, end: str, step_seconds: int = 60,
                  aggregation: str = "avg") -> dict[str, Any]:
    """Return a time series of a service metric between two instants."""
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}")
    if aggregation not in {"avg", "max", "min", "sum", "p95"}:
        raise ValueError("aggregation must be avg, max, min, sum or p95")
    if not 10 <= step_seconds <= 86400:
        raise ValueError("step_seconds must be between 10 and 86400")
    t0, t1 = _parse_dt(start, "start"), _parse_dt(end, "end")
    if t1 <= t0:
        raise ValueError("end must be after start")
    points = int((t1 - t0).total_seconds() // step_seconds) + 1
    if points > 11000:
        raise ValueError(f"the query would return {points} points; use a larger step_seconds (max 11000 points)")
    mean, spread, unit = _METRICS[metric]
    rng = seeded_rng("metrics", service, metric, aggregation)
    phase = rng.uniform(0, 2 * math.pi)
    bias = {"avg": 1.0, "max": 1.35, "min": 0.65, "sum": 60.0, "p95": 1.25}[aggregation]
    series = []
    for i in range(points):
        ts = t0 + timedelta(seconds=i * step_seconds)
        daily = math.sin(2 * math.pi * (ts.hour * 3600 + ts.minute * 60) / 86400 + phase)
        noise = seeded_rng("pt", service, metric, int(ts.timestamp())).gauss(0, spread * 0.15)
        value = max(0.0, (mean + spread * 0.5 * daily + noise) * bias)
        if unit == "percent" and aggregation != "sum":
            value = min(value, 100.0)
        series.append({"timestamp": ts.isoformat().replace("+00:00", "Z"), "value": round(value, 3)})
    values = [p["value"] for p in series]
    return {"service": service, "metric": metric, "unit": unit, "aggregation": aggregation,
            "step_seconds": step_seconds, "points": series,
            "summary": {"min": min(values), "max": max(values), "mean": round(sum(values) / len(values), 3)}}


def _cron_value(token: str, names: dict[str, int] | None, label: str) -> int:
    """Parse one cron value: a number or a month/day name."""
    if names and token.upper() in names:
        return names[token.upper()]
    if not token.isdigit():
        raise ValueError(f"invalid value {token!r} in cron {label} field")
    return int(token)


def _cron_field(text: str, lo: int, hi: int, names: dict[str, int] | None, label: str) -> set[int]:
    """Expand one cron field into the set of values it matches."""
    result: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"invalid step in cron {label} field: {text!r}")
            step = int(step_text)
        if part == "*":
            first, last = lo, hi
        elif "-" in part:
            a, b = part.split("-", 1)
            first, last = _cron_value(a, names, label), _cron_value(b, names, label)
        else:
            first = _cron_value(part, names, label)
            last = hi if step > 1 else first
        if not (lo <= first <= hi and lo <= last <= hi) or first > last:
            raise ValueError(f"cron {label} field {text!r} is out of range {lo}-{hi}")
        result.update(range(first, last + 1, step))
    if label == "day-of-week" and 7 in result:
        result = (result - {7}) | {0}
    return result


def cron_next_runs(expression: str, after: str, count: int = 5) -> dict[str, Any]:
    """List the next run times of a five-field cron expression after a given instant (UTC)."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("expression must have five fields: minute hour day-of-month month day-of-week")
    if not 1 <= count <= 50:
        raise ValueError("count must be between 1 and 50")
    minutes = sorted(_cron_field(fields[0], 0, 59, None, "minute"))
    hours = sorted(_cron_field(fields[1], 0, 23, None, "hour"))
    doms = _cron_field(fields[2], 1, 31, None, "day-of-month")
    months = _cron_field(fields[3], 1, 12, _MONTHS, "month")
    dows = _cron_field(fields[4], 0, 7, _DAYS, "day-of-week")
    dom_any, dow_any = fields[2] == "*", fields[4] == "*"
    start = _parse_dt(after, "after").astimezone(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
    runs: list[str] = []
    day = start.replace(hour=0, minute=0)
    for _ in range(366 * 5):
        if day.month in months:
            dom_ok, dow_ok = day.day in doms, (day.weekday() + 1) % 7 in dows
            match = dom_ok and dow_ok if dom_any or dow_any else dom_ok or dow_ok
            if match:
                for h in hours:
                    for m in minutes:
                        t = day.replace(hour=h, minute=m)
                        if t >= start:
                            runs.append(t.isoformat().replace("+00:00", "Z"))
                            if len(runs) == count:
                                return {"expression": expression, "timezone": "UTC", "runs": runs}
        day += timedelta(days=1)
    if not runs:
        raise ValueError(f"cron expression {expression!r} never fires within five years")
    return {"expression": expression, "timezone": "UTC", "runs": runs}


def compute_sla_downtime(availability_percent: float, period: str = "month",
                         measured_downtime_minutes: float = 0.0) -> dict[str, Any]:
    """Convert an availability target into an allowed-downtime error budget."""
    if period not in _PERIOD_SECONDS:
        raise ValueError(f"period must be one of {list(_PERIOD_SECONDS)}")
    if not 90 <= availability_percent < 100:
        raise ValueError("availability_percent must be at least 90 and below 100")
    if measured_downtime_minutes < 0:
        raise ValueError("measured_downtime_minutes must be >= 0")
    allowed = _PERIOD_SECONDS[period] * (1 - availability_percent / 100)
    used = measured_downtime_minutes * 60
    return {
        "period": period,
        "allowed_downtime_seconds": round(allowed, 1),
        "allowed_downtime_minutes": round(allowed / 60, 2),
        "allowed_downtime_human": str(timedelta(seconds=round(allowed))),
        "budget_consumed_percent": round(used / allowed * 100, 2),
        "budget_remaining_minutes": round((allowed - used) / 60, 2),
        "breached": used > allowed,
        "achieved_availability_percent": round(100 * (1 - used / _PERIOD_SECONDS[period]), 5),
    }


def compute_pod_capacity(node: dict[str, float], pod_requests: dict[str, float], node_count: int = 1,
                         system_reserved_percent: float = 10.0, max_pods_per_node: int = 110) -> dict[str, Any]:
    """Compute how many pods with given resource requests fit on a node pool."""
    for key in ("cpu_cores", "memory_gib"):
        if node.get(key) is None or node[key] <= 0:
            raise ValueError(f"node.{key} must be > 0")
    for key in ("cpu_millicores", "memory_mib"):
        if pod_requests.get(key) is None or pod_requests[key] <= 0:
            raise ValueError(f"pod_requests.{key} must be > 0")
    if not 1 <= node_count <= 1000:
        raise ValueError("node_count must be between 1 and 1000")
    if not 0 <= system_reserved_percent <= 50:
        raise ValueError("system_reserved_percent must be between 0 and 50")
    if not 1 <= max_pods_per_node <= 250:
        raise ValueError("max_pods_per_node must be between 1 and 250")
    usable = 1 - system_reserved_percent / 100
    cpu_m = node["cpu_cores"] * 1000 * usable
    mem_mib = node["memory_gib"] * 1024 * usable
    by_cpu = int(cpu_m // pod_requests["cpu_millicores"])
    by_mem = int(mem_mib // pod_requests["memory_mib"])
    per_node = min(by_cpu, by_mem, max_pods_per_node)
    limit = "cpu" if per_node == by_cpu else "memory" if per_node == by_mem else "max_pods"
    return {
        "allocatable_per_node": {"cpu_millicores": round(cpu_m), "memory_mib": round(mem_mib)},
        "pods_per_node": per_node,
        "total_pods": per_node * node_count,
        "limiting_resource": limit,
        "utilisation_at_capacity": {
            "cpu_percent": round(per_node * pod_requests["cpu_millicores"] / cpu_m * 100, 1) if cpu_m else 0.0,
            "memory_percent": round(per_node * pod_requests["memory_mib"] / mem_mib * 100, 1) if mem_mib else 0.0,
        },
    }
