"""Create the demo team: a team admin, a member and an auditor, each with a sandbox key."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from models_admin import roles
from models_admin.models import ApiCredential

# (username, role, sandbox key, password). Alice and Carol share one sandbox workspace,
# Bob has his own: the demo shows that each key sees its own models.
DEMO_USERS = (
    ("alice", roles.Role.TEAM_ADMIN, "sandbox-acme-production", "alice-demo-pass"),
    ("bob", roles.Role.MEMBER, "sandbox-acme-research", "bob-demo-pass"),
    ("carol", roles.Role.AUDITOR, "sandbox-acme-production", "carol-demo-pass"),
)


class Command(BaseCommand):
    help = "Create (or reset) the demo users with their roles and sandbox API keys."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            for username, role, key, password in DEMO_USERS:
                user, _ = User.objects.get_or_create(
                    username=username, defaults={"email": f"{username}@example.com"}
                )
                user.set_password(password)
                user.is_active = True
                user.save()
                roles.set_role(user, role)
                credential, _ = ApiCredential.objects.get_or_create(
                    user=user, defaults={"key_encrypted": "", "key_masked": ""}
                )
                credential.set_key(key)
                credential.save()
        self.stdout.write(self.style.SUCCESS("Demo users ready:"))
        for line in login_lines():
            self.stdout.write(line)


def login_lines() -> list[str]:
    return [
        f"  {username:<6} / {password:<16} {role.label} (sandbox key {key})"
        for username, role, key, password in DEMO_USERS
    ]
