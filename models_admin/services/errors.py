"""The errors every service may raise (see the package docstring for the tree), and
``authorize``: the one permission check, which records a refused change."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from models_admin import audit, remote
from models_admin.audit import Actor


class ServiceError(Exception):
    message = "The action could not be completed."

    def __init__(self, message: str | None = None) -> None:
        if message:
            self.message = message
        super().__init__(self.message)


class MissingApiKey(ServiceError):
    message = "Add your Mistral API key first."


class UndecryptableApiKey(ServiceError):
    message = (
        "Your stored API key can't be decrypted any more (its encryption key was retired). "
        "Enter your key again."
    )


class NotFineTuned(ServiceError):
    message = "Only fine-tuned models can be changed; base models belong to Mistral."


class EditConflict(ServiceError):
    """The model's name or description changed upstream after the form was opened."""

    def __init__(self, current: remote.ModelCard) -> None:
        self.current = current
        super().__init__(
            "Someone changed this model since you opened the form. "
            "The form now shows the current values; review them and save again."
        )


# What a refusal says (the 403 page shows it), where "your role" is too vague.
REFUSALS = {
    "models_admin.view_auditentry": "Only team admins and auditors can read the audit log.",
    "models_admin.export_auditentry": "Only team admins and auditors can export the audit log.",
    "models_admin.manage_team": "Only team admins manage the team.",
}


def authorize(actor: Actor, permission: str, *, action: str = "", target_id: str = "") -> None:
    """Raise PermissionDenied unless the actor's role grants the permission. A refused
    change (``action`` given) is recorded in the audit log as denied."""
    if actor.user.has_perm(permission):
        return
    if action:
        audit.denied(actor=actor, action=action, target_id=target_id)
    raise PermissionDenied(REFUSALS.get(permission, "Your role does not allow this."))
