"""``make bench``: every measurement in one run, a table on stdout and bench/results.json.

    python -m bench.run            # or: python bench/run.py
    python -m bench.run --only "rate limits"   # the sections whose title contains it
    python -m bench.run --only "audit log|inventory sync"   # either
    DATABASE_URL=postgres://... REDIS_URL=redis://... python -m bench.run

The exit status is 0 when every measurement could be taken, whether or not it met its
target, and 1 when one could not (its line says why); 2 when the run could not start.
See bench/README.md for what each line measures and how to read it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results.json"


def _sections() -> list[tuple[str, Callable[[Any], list[Any]]]]:
    from bench import auditlog, bulkjob, listing, queries, ratelimit, serve, upstream
    from bench import sync as inventory_sync

    # The audit history goes first: it is generated on the empty log, in the past, and
    # everything after runs against a 100,000-entry log, as a long-lived install would.
    return [
        ("audit log (2, 5)", auditlog.run),
        ("upstream calls (1)", upstream.run),
        ("database queries (2)", queries.run),
        ("list page (3)", listing.run),
        ("bulk archive (4)", bulkjob.run),
        ("bulk under rate limits (11)", ratelimit.run),
        ("gunicorn (6)", serve.run),
        ("inventory sync (12)", inventory_sync.run),
    ]


ORDER = [
    "upstream_calls.",
    "db_queries.list_miss",
    "db_queries.list_hit",
    "db_queries.detail",
    "db_queries.audit",
    "list_ratio.",
    "bulk.",
    "audit.page_ratio",
    "audit.export_memory",
    "sync.",
    "db_queries.sync",
    "gunicorn.",
    "rss.",
]


def _rank(metric: Any) -> int:
    return next((i for i, prefix in enumerate(ORDER) if metric.key.startswith(prefix)), len(ORDER))


def _shown(metric: Any) -> str:
    if metric.error:
        return "n/a"
    shown = metric.details.get("shown")
    if shown is not None and metric.unit == "x":
        median, _, spread = str(shown).partition(" ")
        return f"{median}x {spread}".strip()
    if shown is None:
        shown = f"{metric.value}" if not isinstance(metric.value, float) else f"{metric.value:.3f}"
    return f"{shown} {metric.unit}".strip() if metric.unit not in ("x",) else f"{shown}x"


def table(metrics: list[Any]) -> str:
    rows = [("measurement", "value", "target", "result")]
    for m in metrics:
        result = "ERROR" if m.error else ("met" if m.met else "MISSED")
        target = m.target if m.unit in ("x", "") else f"{m.target} {m.unit}"
        rows.append((m.name, _shown(m), target, result))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for m in metrics:
        if m.error:
            lines.append(f"ERROR {m.name}: {m.error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    only = argv[argv.index("--only") + 1] if "--only" in argv[:-1] else None
    root = str(BENCH_DIR.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from bench import environment

    started = time.perf_counter()
    paths = environment.configure()
    try:
        import django

        django.setup()
        env = environment.Environment.create(paths)
    except Exception as exc:
        print(f"bench: cannot start: {exc}", file=sys.stderr)
        environment.cleanup(paths)
        return 2
    from bench.common import Metric

    metrics: list[Metric] = []
    timings: dict[str, float] = {}
    info: dict[str, Any] = {}
    try:
        info = environment.machine_info(paths)
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
        if info["load_average_at_start"][0] > (os.cpu_count() or 1):
            print(
                f"bench: the machine is busy (load {info['load_average_at_start'][0]}): "
                "timings will be noisier than usual",
                flush=True,
            )
        print(
            f"bench: {info['cpu_count']} CPUs, Python {info['python']}, {info['database']} "
            f"{info['database_version']}, cache {info['cache']}; 5 million additions in "
            f"Python: {info['python_loop_seconds']} s (the machine's speed per core)",
            flush=True,
        )
        for title, section in _sections():
            if only is not None and not any(part in title for part in only.split("|")):
                continue
            print(f"bench: {title} ...", flush=True)
            # The benchmark's own long-lived objects (the in-process sandboxes' workspaces,
            # test clients) are no part of the app's heap: keep the garbage collector's
            # full collections from walking them inside the app's timings.
            gc.collect()
            gc.freeze()
            section_started = time.perf_counter()
            try:
                metrics.extend(section(env))
            except Exception as exc:
                traceback.print_exc()
                metrics.append(
                    Metric(
                        key=f"error.{title}",
                        name=title,
                        value=None,
                        unit="",
                        target="",
                        met=None,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                )
            timings[title] = round(time.perf_counter() - section_started, 1)
            print(f"bench: {title} took {timings[title]} s", flush=True)
    finally:
        env.stop()
        environment.cleanup(paths)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    metrics.sort(key=_rank)
    print()
    print(table(metrics))
    errors = [m for m in metrics if m.error]
    missed = [m for m in metrics if not m.error and not m.met]
    total = round(time.perf_counter() - started, 1)
    print(
        f"\n{len(metrics) - len(errors) - len(missed)} met, {len(missed)} missed, {len(errors)} errors; {total} s"
    )
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "seconds": total,
        "section_seconds": timings,
        "summary": {
            "met": len(metrics) - len(errors) - len(missed),
            "missed": len(missed),
            "errors": len(errors),
        },
        "metrics": [m.to_json() for m in metrics],
    }
    # A partial run (--only) leaves the full run's results.json alone.
    path = RESULTS if only is None else BENCH_DIR / "results-only.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"bench: wrote {path.relative_to(BENCH_DIR.parent)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
