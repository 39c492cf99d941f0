"""The list row built in Python (models_admin/rows.py): escaped as the template engine
escapes, and the corners of what ``{% csrf_token %}`` and the row's back link render."""

from __future__ import annotations

import json

import pytest
from django.template import engines
from django.template.context import Context
from django.template.loader import render_to_string
from django.utils import timezone

from models_admin import remote
from models_admin.inventory import Inventory
from models_admin.rows import render_row

HOSTILE = "<b>\"x\" & 'y'</b>"


def row(**card):
    fields = {
        "id": "ft:open-mistral-7b:org:<1>",
        "type": "fine-tuned",
        "object": "model",
        "created": 1700000000,
        "owned_by": "org",
        "name": HOSTILE,
        "capabilities": {"completion_chat": True},
        "job": "job",
        "root": "open-mistral-7b",
        "archived": False,
    }
    body = json.dumps({"data": [{**fields, **card}]}).encode()
    return Inventory.build(remote.read_model_list(body)).rows[0]


def test_every_value_is_escaped():
    html = render_row(row(), Context({"can_change": True, "csrf_token": "t"}))

    assert HOSTILE not in html
    assert "&lt;b&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/b&gt;" in html
    assert 'data-model-id="ft:open-mistral-7b:org:&lt;1&gt;"' in html
    assert "/models/ft:open-mistral-7b:org:%3C1%3E/" in html


def test_without_a_token_or_a_request_the_form_has_neither():
    for token in ("", "NOTPROVIDED"):
        html = render_row(row(), Context({"can_change": True, "csrf_token": token}))

        assert "csrfmiddlewaretoken" not in html
        assert '<input type="hidden" name="next" value="">' in html


def test_without_change_rights_there_are_no_actions():
    html = render_row(row(archived=True), Context({"can_change": False}))

    assert "<form" not in html and 'name="ids"' not in html
    assert '<span class="badge archived">Archived</span>' in html


def test_the_tables_rows_are_what_the_row_template_gives_for_each():
    rows = [row(), row(id="ft:open-mistral-7b:org:2", archived=True, created=1800000000)]
    context = {"can_change": True, "can_delete": True, "csrf_token": "t", "row_next": "/m/"}

    one_tag = engines["django"].from_string("{% load models_admin_tags %}{% model_rows rows %}")
    each = "".join(
        render_to_string("models_admin/_model_row.html", {**context, "row": r}) for r in rows
    )

    assert one_tag.render({**context, "rows": rows}) == each
    assert each.count("<tr ") == 2 and ">2027-01-15</time>" in each


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/Los_Angeles"])
def test_dates_are_what_the_date_filter_gives_in_the_current_time_zone(zone):
    # 2023-11-14 22:13:20 UTC: already the 15th in Kiritimati (UTC+14).
    the_row = row(created=1700000000, deprecation="2023-11-14T23:30:00+00:00")
    card = the_row.card
    dates = engines["django"].from_string(
        '{{ created|date:"c" }} {{ created|date:"Y-m-d" }} {{ deprecation|date:"Y-m-d" }}'
    )

    with timezone.override(zone):
        html = render_row(the_row, Context({}))
        iso, day, deprecated = dates.render(
            {"created": card.created_at, "deprecation": card.deprecation}
        ).split()

    assert f'<time class="date" datetime="{iso}">{day}</time>' in html
    assert f'title="Deprecated {deprecated}"' in html
    assert (day == "2023-11-15") is (zone == "Pacific/Kiritimati")
