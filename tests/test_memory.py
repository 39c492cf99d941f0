"""Freed memory is handed back only after a large list body (models_admin/memory.py)."""

from __future__ import annotations

from models_admin import memory


def test_a_small_body_leaves_the_allocator_alone():
    assert memory.release_after(memory.LARGE_BODY - 1) is False


def test_a_large_body_trims_where_glibc_allows_it():
    assert memory.release_after(memory.LARGE_BODY) is (memory._malloc_trim is not None)
