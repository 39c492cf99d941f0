"""The sandbox: a stateful, Mistral-compatible model-management API.

Part of the product, not a test double: ``python manage.py sandbox`` serves it for
offline demos and benchmarks, and the test suite serves it on 127.0.0.1:0 (see
tests/conftest.py). The official ``mistralai`` SDK is run against it in
tests/test_sandbox_sdk.py to keep it faithful to Mistral's contract.

    with SandboxServer() as sandbox:             # serves in a daemon thread
        sandbox.url                              # "http://127.0.0.1:<port>"
        sandbox.state.workspace("sandbox-alice").put(card)
        sandbox.state.faults.set(fail_status=503, fail_times=2)

Modules: ``server`` (HTTP plumbing, SandboxServer), ``api`` (the operations and
control endpoints), ``replies`` (response bodies), ``state`` (workspaces, request
log), ``faults`` (injected failures, the per-key rate limiter), ``seed``
(deterministic starting inventory), ``cli`` (``python -m models_admin.sandbox`` and
``manage.py sandbox``, which need no settings or secrets).

Real-world faults it can show: ``rate_limit`` (429 with Retry-After and
x-ratelimit-*), ``fail_status`` 520-524 (Cloudflare's HTML pages), ``drop_fields``
(a 2xx missing fields, after the change was made), ``POST /_sandbox/odd-cards``
(cards with null or missing fields, an unknown type, no id), and 405 JSON for any
method it does not serve.
"""

from __future__ import annotations

from models_admin.sandbox.faults import Faults
from models_admin.sandbox.server import SandboxServer
from models_admin.sandbox.state import RecordedRequest, SandboxState, Workspace, fingerprint

__all__ = ["Faults", "RecordedRequest", "SandboxServer", "SandboxState", "Workspace", "fingerprint"]
