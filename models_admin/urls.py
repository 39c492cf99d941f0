from __future__ import annotations

from django.urls import path, register_converter

from models_admin.views import account, audit, background, bulk, models
from models_admin.views.common import by_method


class ModelIdConverter:
    """Mistral model ids: ``mistral-small-latest``, ``ft:open-mistral-7b:b6e34a5e:20240719:20178c3c``.
    Anything else (``/``, ``?``, ``#``, dot segments) never reaches a view."""

    regex = r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,255}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ModelIdConverter, "model_id")

app_name = "models_admin"
urlpatterns = [
    path("models/", models.model_list, name="model_list"),
    path("models/bulk/", bulk.bulk_prepare, name="bulk_prepare"),
    path("bulk/<uuid:job_id>/", bulk.bulk_job, name="bulk_job"),
    path("bulk/<uuid:job_id>/start/", bulk.bulk_start, name="bulk_start"),
    path("bulk/<uuid:job_id>/retry/", bulk.bulk_retry, name="bulk_retry"),
    path("models/<model_id:model_id>/", models.model_detail, name="model_detail"),
    path(
        "models/<model_id:model_id>/edit/",
        by_method(get=models.model_edit_form, post=models.model_edit),
        name="model_edit",
    ),
    path("models/<model_id:model_id>/archive/", models.model_archive, name="model_archive"),
    path("models/<model_id:model_id>/unarchive/", models.model_unarchive, name="model_unarchive"),
    path(
        "models/<model_id:model_id>/delete/",
        by_method(get=models.model_delete_form, post=models.model_delete),
        name="model_delete",
    ),
    # The same actions from a list row: the row comes back, or goes.
    path(
        "models/<model_id:model_id>/row/archive/",
        models.model_row_archive,
        name="model_row_archive",
    ),
    path(
        "models/<model_id:model_id>/row/unarchive/",
        models.model_row_unarchive,
        name="model_row_unarchive",
    ),
    path("models/<model_id:model_id>/row/", models.model_row, name="model_row"),
    path(
        "models/<model_id:model_id>/row/rename/",
        by_method(get=models.model_row_rename_form, post=models.model_row_rename),
        name="model_row_rename",
    ),
    path(
        "models/<model_id:model_id>/row/delete/",
        by_method(get=models.model_delete_form, post=models.model_row_delete),
        name="model_row_delete",
    ),
    path("account/api-key/", account.api_key, name="api_key"),
    path("account/api-key/remove/", account.api_key_remove, name="api_key_remove"),
    path("audit/", audit.audit_list, name="audit_list"),
    path("audit/deleted-models/", audit.audit_deleted, name="audit_deleted"),
    path("audit/export.csv", audit.audit_export, {"fmt": "csv"}, name="audit_export_csv"),
    path("audit/export.ndjson", audit.audit_export, {"fmt": "ndjson"}, name="audit_export_ndjson"),
    path("audit/checkpoint/", audit.audit_checkpoint, name="audit_checkpoint"),
    path("audit/<int:seq>/", audit.audit_detail, name="audit_detail"),
    path("background/", background.background, name="background"),
    path("team/", account.team, name="team"),
    path("team/add/", account.team_add, name="team_add"),
    path("team/<int:user_id>/role/", account.team_role, name="team_role"),
    path("team/<int:user_id>/active/", account.team_active, name="team_active"),
    path(
        "team/<int:user_id>/password-link/", account.team_password_link, name="team_password_link"
    ),
]
