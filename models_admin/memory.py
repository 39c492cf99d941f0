"""Giving freed memory back to the operating system after a large list call.

Reading a 10,000-model list allocates its 8 MB body several times over (the chunks as
they arrive, the joined body, the decoded entries) and frees most of it again at once.
glibc keeps such freed memory in the process (its heap grows, and its threshold for
returning large blocks rises with them), so a long-lived worker's resident memory grows
by each peak it has had. ``malloc_trim`` hands the free pages back; it takes about a
millisecond or a few, so it runs only after a body of LARGE_BODY bytes or more. Elsewhere than
glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Final

LARGE_BODY: Final = 4 << 20  # a list of about 5,000 models


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return None


_malloc_trim = _libc()


def release_after(body_size: int) -> bool:
    """Return freed memory to the system after reading a body of ``body_size`` bytes, if
    it was large; whether anything was tried."""
    if body_size < LARGE_BODY or _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
