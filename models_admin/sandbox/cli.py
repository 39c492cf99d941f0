"""Serving the sandbox from a terminal, without Django settings or secrets:

    python -m models_admin.sandbox [--port 8001] [--rate-limit 2] ...
    python manage.py sandbox ...        # the same (manage.py hands over before settings load)

The sandbox needs neither the database nor the project's secrets, so neither entry
point loads ``dashboard.settings`` (which stops without secrets when DJANGO_DEBUG is off).
The ``sandbox`` management command shares these arguments, for ``call_command``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any, Final, Protocol

from models_admin.sandbox.server import SandboxServer

# Enough history for /_sandbox/requests in a demo without growing forever in a benchmark.
RECORD_LIMIT: Final = 10_000
HELP: Final = "Serve the sandbox Mistral model-management API (any key starting with 'sandbox-')."


class Output(Protocol):
    def write(self, text: str, /) -> object: ...
    def flush(self) -> None: ...


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1)."
    )
    parser.add_argument(
        "--port", type=int, default=8001, help="Port; 0 picks a free one (default 8001)."
    )
    parser.add_argument(
        "--models", type=int, default=40, help="Fine-tuned models per workspace (default 40)."
    )
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="Delay added to every API request (default 0)."
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="Requests per second per key; over it, 429 with Retry-After (default 0: no limit).",
    )
    parser.add_argument("--quiet", action="store_true", help="Do not log each request.")


def serve(options: dict[str, Any], out: Output) -> None:
    """Serve until Ctrl-C or SIGTERM."""
    server = SandboxServer(
        options["host"],
        options["port"],
        models=options["models"],
        latency_ms=options["latency_ms"],
        rate_limit=options["rate_limit"],
        record_limit=RECORD_LIMIT,
        access_log=None if options["quiet"] else sys.stderr,
    )
    out.write(f'Sandbox Mistral API on {server.url} — any key starting with "sandbox-" works\n')
    out.write(
        f"Faults: {server.url}/_sandbox/faults · request log: {server.url}/_sandbox/requests\n"
    )
    if options["rate_limit"]:
        out.write(f"Rate limit: {options['rate_limit']:g} requests/s per key\n")
    out.write("Quit with CONTROL-C.\n")
    out.flush()

    def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Containers and process managers stop with SIGTERM: shut down as on Ctrl-C.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.write("Sandbox stopped.\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models_admin.sandbox", description=HELP)
    add_arguments(parser)
    serve(vars(parser.parse_args(argv)), sys.stdout)
    return 0
