"""Use cases: what views, admin actions, bulk jobs and management commands call.

Each service takes keyword-only arguments, checks the actor's permission itself
(``authorize``: a refused change is recorded as denied; views only declare what they
need, templates only hide), calls Mistral through the actor's own upstream session
(``upstream_session``: their key, its client, its cached inventory), writes the audit
log, and says in its docstring what it raises:

    ServiceError            .message is safe to show to users
    ├── MissingApiKey       the user has not saved a key yet
    ├── UndecryptableApiKey the stored key can no longer be decrypted (its encryption key was removed)
    ├── NotFineTuned        the action only applies to fine-tuned models
    └── EditConflict        the model changed upstream since the edit form was opened
    django PermissionDenied the actor's role does not allow the action (recorded as denied)
    remote.ModelsApiError   Mistral failed or refused

Every change is written ahead to the audit log (audit.attempt) before it goes
upstream, and its outcome appended after, whatever happens.

    credentials  the user's API key          models  browsing, and the model changes
    team         members and their roles     audit   reading and exporting the log
    upstream     UpstreamSession             errors  the errors above, and authorize
"""

from __future__ import annotations

from models_admin.services.audit import (
    DeletedModels,
    EntryDetail,
    audit_checkpoint,
    audit_deleted,
    audit_detail,
    audit_export,
    audit_list,
    model_history,
)
from models_admin.services.credentials import credential_get, credential_remove, credential_save
from models_admin.services.errors import (
    EditConflict,
    MissingApiKey,
    NotFineTuned,
    ServiceError,
    UndecryptableApiKey,
    authorize,
)
from models_admin.services.models import (
    model_apply,
    model_archive,
    model_authorize,
    model_delete,
    model_get,
    model_unarchive,
    model_update,
    models_inventory,
)
from models_admin.services.team import (
    TeamMember,
    member_add,
    member_password_link,
    member_set_active,
    member_set_role,
    team_members,
)
from models_admin.services.upstream import UpstreamSession, upstream_session

__all__ = [
    "DeletedModels",
    "EditConflict",
    "EntryDetail",
    "MissingApiKey",
    "NotFineTuned",
    "ServiceError",
    "TeamMember",
    "UndecryptableApiKey",
    "UpstreamSession",
    "audit_deleted",
    "audit_checkpoint",
    "audit_detail",
    "audit_export",
    "audit_list",
    "model_history",
    "authorize",
    "credential_get",
    "credential_remove",
    "credential_save",
    "member_add",
    "member_password_link",
    "member_set_active",
    "member_set_role",
    "model_apply",
    "model_archive",
    "model_authorize",
    "model_delete",
    "model_get",
    "model_unarchive",
    "model_update",
    "models_inventory",
    "team_members",
    "upstream_session",
]
