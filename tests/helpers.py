"""Small helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from models_admin import remote
from tests.conftest import ALICE_KEY

# What htmx adds to every request it makes.
HTMX = {"HX-Request": "true"}


def url(name: str, *args: Any) -> str:
    """The path of one of the app's URLs, by name."""
    return reverse(f"models_admin:{name}", args=args)


def fine_tuned_cards(sandbox, key: str = ALICE_KEY, *, archived: bool | None = False) -> list[dict]:
    """The workspace's fine-tuned cards (archived or not; None: both), in seed order."""
    return [
        card
        for card in sandbox.state.workspace(key).models.values()
        if card["type"] == "fine-tuned" and (archived is None or card["archived"] is archived)
    ]


def fine_tuned(sandbox, key: str = ALICE_KEY, *, archived: bool | None = False) -> dict:
    """The workspace's first fine-tuned card (archived or not; None: either)."""
    return fine_tuned_cards(sandbox, key, archived=archived)[0]


def add_odd_cards(sandbox, key: str = ALICE_KEY) -> dict[str, dict]:
    """The sandbox's odd cards (null job, no root, archived "yes", an unknown type, no
    id), added to ``key``'s workspace over HTTP, by name."""
    response = remote.http_pool().post(
        f"{sandbox.url}/_sandbox/odd-cards", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200
    return {card["name"]: card for card in response.json()}
