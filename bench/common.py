"""What every measurement shares: the Metric record, timing, and counting helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# The injected upstream latency of the timed measurements (3 and 4), in milliseconds.
LATENCY_MS = 50
# Inventory sizes: query counts compare the small one with the large one; timings use the large one.
SMALL_MODELS = 100
LARGE_MODELS = 2000
# Audit log sizes.
AUDIT_SMALL = 1_000
AUDIT_LARGE = 100_000
BULK_SIZE = 200

HTMX = {"HX-Request": "true"}


class BenchError(RuntimeError):
    """A measurement could not be taken (as opposed to a target that was missed)."""


@dataclass
class Metric:
    key: str
    name: str
    value: float | int | str | None
    unit: str
    target: str
    met: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
            "details": self.details,
            "error": self.error,
        }


def failed(key: str, name: str, unit: str, target: str, error: str) -> Metric:
    return Metric(key, name, None, unit, target, None, error=error)


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def summary_ms(samples: list[float]) -> dict[str, float | int]:
    """p50, p90, min and max of samples given in seconds, in milliseconds."""
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {
        "n": len(ordered),
        "p50_ms": round(p50(ordered) * 1000, 2),
        "p90_ms": round(p90 * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


@contextmanager
def upstream_calls(server: Any) -> Iterator[list[Any]]:
    """The sandbox's ``/v1`` requests made inside the block (the list is filled on exit)."""
    before = len(server.state.requests)
    calls: list[Any] = []
    yield calls
    calls.extend(server.state.requests[before:])


def describe_calls(calls: list[Any]) -> list[str]:
    return [f"{call.method} {call.path}" for call in calls]


def expect_status(response: Any, *allowed: int) -> Any:
    if response.status_code not in allowed:
        raise BenchError(
            f"{response.request['REQUEST_METHOD']} {response.request['PATH_INFO']} answered "
            f"{response.status_code}, expected {' or '.join(map(str, allowed))}"
        )
    return response
