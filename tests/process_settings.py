"""Settings of the worker and web processes that tests start: the test settings, with a
client timeout long enough for requests the sandbox holds on purpose."""

from __future__ import annotations

from tests.settings import *  # noqa: F403

MISTRAL_API_TIMEOUT = 60.0
