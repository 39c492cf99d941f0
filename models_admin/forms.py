"""One small form per action. Constraints live here, so services receive clean data."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Self, TypedDict

from django import forms
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password

from models_admin.inventory import SORTS, Inventory, ModelQuery
from models_admin.models import AuditEntry, BulkJob
from models_admin.remote import ApiAuthFailed, ApiRejected, ModelsApiError
from models_admin.roles import Role
from models_admin.rows import capability_label

if TYPE_CHECKING:
    from models_admin.services import EditConflict

# Upstream limits are undocumented; these are the sandbox's, and Mistral's 422s are
# shown as field errors anyway.
NAME_MAX = 128
DESCRIPTION_MAX = 2048
API_KEY_MAX = 200

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ApiKeyForm(forms.Form):
    api_key = forms.CharField(
        label="Mistral API key",
        max_length=API_KEY_MAX,
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}
        ),
        help_text="Stored encrypted. After saving, only its first and last characters are shown.",
        error_messages={"required": "Enter your API key."},
    )
    save_unverified = forms.BooleanField(
        label="Save it without checking (Mistral could not be reached)", required=False
    )
    # Set when Mistral could not be asked: the form then offers save_unverified.
    offer_unverified = False

    def refuse(self, exc: ModelsApiError) -> None:
        """Say why the key was not saved; offer to save it unchecked if Mistral was unreachable."""
        if isinstance(exc, ApiAuthFailed):
            self.add_error(
                "api_key",
                "Mistral rejected this key (it may be revoked or mistyped). Nothing was saved.",
            )
            return
        self.add_error(
            "api_key",
            f"{exc.message} The key could not be checked, so it was not saved. "
            "Try again, or tick “save it without checking”.",
        )
        self.offer_unverified = True

    def clean_api_key(self) -> str:
        key: str = self.cleaned_data["api_key"]
        if any(ch.isspace() for ch in key) or _CONTROL.search(key):
            raise forms.ValidationError(
                "An API key has no spaces, line breaks or control characters."
            )
        if not key.isascii() or not key.isprintable():
            raise forms.ValidationError("An API key only has letters, digits and punctuation.")
        return key


SORT_CHOICES = [
    ("-created", "Newest first"),
    ("created", "Oldest first"),
    ("name", "Name A–Z"),
    ("-name", "Name Z–A"),
    ("id", "Id A–Z"),
    ("-id", "Id Z–A"),
]


class ModelFilterForm(forms.Form):
    """The list's query-string state. Invalid values fall back to defaults: a stale or
    hand-edited link still shows a page. Given the inventory, the root and capability
    fields offer what it holds."""

    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.SearchInput(attrs={"placeholder": "Id, name or description"}),
    )
    type = forms.ChoiceField(
        required=False,
        choices=[("", "All types"), ("base", "Base"), ("fine-tuned", "Fine-tuned")],
    )
    archived = forms.ChoiceField(
        required=False,
        choices=[("", "Archived or not"), ("no", "Not archived"), ("yes", "Archived")],
    )
    root = forms.CharField(required=False, max_length=200)
    capability = forms.CharField(required=False, max_length=100)
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, inventory: Inventory | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        if inventory is not None:
            self.fields["root"].widget = forms.Select(
                choices=[("", "Any root"), *((root, root) for root in inventory.roots)]
            )
            self.fields["capability"].widget = forms.Select(
                choices=[
                    ("", "Any capability"),
                    *((cap, capability_label(cap)) for cap in inventory.capabilities),
                ]
            )

    def carried(self) -> list[tuple[str, str]]:
        """The visible fields' names and values as the request gave them (what each
        field's ``value`` renders), for a form that carries the filters along as hidden
        inputs: reading them so costs a tenth of going through the bound fields."""
        return [
            (name, self.data.get(name) or "")
            for name, field in self.fields.items()
            if not field.widget.is_hidden
        ]

    def sort_label(self) -> str:
        """The current order in words ("Newest first"), for the table's caption."""
        return dict(SORT_CHOICES).get(self.to_query().sort, "Newest first")

    def to_query(self) -> ModelQuery:
        self.is_valid()
        data = {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}
        sort = data.get("sort", "-created")
        return ModelQuery(
            q=data.get("q", ""),
            type=data.get("type", ""),
            archived=data.get("archived", ""),
            root=data.get("root", ""),
            capability=data.get("capability", ""),
            sort=sort if sort in SORTS else "-created",
            page=data.get("page", 1),
        )


class _Changes(TypedDict):
    name: str | None
    description: str | None
    expected_name: str | None
    expected_description: str | None


class ModelEditForm(forms.Form):
    # What the user saw when the form opened, as JSON: saving is refused if the model
    # has changed upstream since, so nobody overwrites a change they did not see.
    # Declared (so cleaned) first: a field left as it was is kept exactly as it was.
    expected = forms.CharField(widget=forms.HiddenInput, max_length=20_000, strip=False)
    # The length is checked in clean_name: a longer name set elsewhere, left as it was,
    # must not block editing the description. autofocus: the form is swapped in (htmx
    # focuses it) where an Edit link was.
    name = forms.CharField(
        label="Name",
        required=False,
        widget=forms.TextInput(attrs={"maxlength": NAME_MAX, "autofocus": True}),
    )
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=DESCRIPTION_MAX,
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    @classmethod
    def for_card(cls, name: str | None, description: str | None) -> Self:
        return cls(
            initial={
                "name": name or "",
                "description": description or "",
                "expected": json.dumps({"name": name, "description": description}),
            }
        )

    @classmethod
    def conflicting(cls, conflict: EditConflict) -> Self:
        """The form again with the current values, saying someone changed them meanwhile."""
        form = cls.for_card(conflict.current.name, conflict.current.description)
        form.errors["__all__"] = form.error_class([conflict.message])
        return form

    def changes(self) -> _Changes:
        """The service's keyword arguments: the new values and the ones the user saw."""
        expected = self.cleaned_data["expected"]
        return {
            "name": self.cleaned_data["name"],
            "description": self.cleaned_data["description"],
            "expected_name": expected["name"],
            "expected_description": expected["description"],
        }

    def add_upstream_errors(self, exc: ApiRejected) -> None:
        """Mistral's 422 as errors on the fields it names (or on the form)."""
        for field, errors in exc.field_errors.items():
            for error in errors:
                self.add_error(field if field in self.fields else None, error)
        if not exc.field_errors:
            self.add_error(None, exc.message)

    def clean_name(self) -> str | None:
        name: str = self.cleaned_data["name"]
        expected: dict[str, str | None] | None = self.cleaned_data.get("expected")
        if expected is not None and name == (expected["name"] or "").strip():
            return expected["name"]  # left as it was: not re-sent, whatever it holds
        if len(name) > NAME_MAX:
            raise forms.ValidationError(
                f"Ensure this value has at most {NAME_MAX} characters (it has {len(name)})."
            )
        if _CONTROL.search(name):
            raise forms.ValidationError("A name can't contain line breaks or control characters.")
        return name or None

    def clean_description(self) -> str | None:
        description: str = self.cleaned_data["description"]
        if _CONTROL_BUT_NEWLINES.search(description):
            raise forms.ValidationError("A description can't contain control characters.")
        return description.replace("\r\n", "\n") or None

    def clean_expected(self) -> dict[str, str | None]:
        try:
            value: Any = json.loads(self.cleaned_data["expected"])
        except ValueError:
            value = None
        if not (
            isinstance(value, dict)
            and set(value) == {"name", "description"}
            and all(v is None or isinstance(v, str) for v in value.values())
        ):
            raise forms.ValidationError("The form is out of date; reload the page.")
        return value


class RenameForm(ModelEditForm):
    """The name alone, from a list row: the description is sent back as it was seen, so
    the same conflict detection applies (a change made meanwhile is never overwritten)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["description"]

    def changes(self) -> _Changes:
        expected = self.cleaned_data["expected"]
        return {
            "name": self.cleaned_data["name"],
            "description": expected["description"],
            "expected_name": expected["name"],
            "expected_description": expected["description"],
        }


class ModelDeleteForm(forms.Form):
    confirm_id = forms.CharField(
        label="Type the model id to confirm",
        max_length=300,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    reason = forms.CharField(
        label="Reason (kept in the audit log)",
        max_length=500,
        min_length=3,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    # The name the user saw, for the message once deleted ("Deleted sql-assistant-v7.").
    # No length limit: a longer name set elsewhere must not block the delete.
    name = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, model_id: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_id = model_id

    def shown_name(self) -> str:
        name = self.cleaned_data.get("name") or ""
        return name if name and not _CONTROL.search(name) else self.model_id

    def clean_confirm_id(self) -> str:
        typed: str = self.cleaned_data["confirm_id"]
        if typed != self.model_id:
            raise forms.ValidationError("That is not this model's id. Type it exactly to confirm.")
        return typed


class AddMemberForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[\w.@+-]+\Z",
        max_length=150,
        error_messages={"invalid": "Letters, digits and @ . + - _ only."},
    )
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)
    password = forms.CharField(
        label="Initial password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to get a one-time set-password link to hand over instead.",
    )

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That username is taken.")
        return username

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password = cleaned.get("password")
        if password:
            user = User(username=cleaned.get("username", ""), email=cleaned.get("email", ""))
            try:
                validate_password(password, user)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class AuditFilterForm(forms.Form):
    """The audit log's query-string state (invalid values are ignored, like the model list)."""

    q = forms.CharField(label="Search", required=False, max_length=200)
    actor = forms.CharField(label="Actor", required=False, max_length=150)
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "Any action"), *AuditEntry.Action.choices]
    )
    outcome = forms.ChoiceField(
        label="Outcome", required=False, choices=[("", "Any outcome"), *AuditEntry.Outcome.choices]
    )
    target = forms.CharField(label="Model id", required=False, max_length=300)
    source = forms.ChoiceField(
        label="Source",
        required=False,
        choices=[("", "Any source"), ("dashboard", "Dashboard"), ("outside", "Outside changes")],
    )
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Labels sit above their fields: no "Action:". (A class attribute would not do:
        # BaseForm.__init__ overwrites it with its own default.)
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def filters(self) -> dict[str, Any]:
        """The valid, non-empty filters (the page cursors excluded)."""
        self.is_valid()
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if value not in (None, "") and name not in ("before", "after")
        }


class BulkSelectForm(forms.Form):
    """What to do to which models: the ticked rows (``ids``) or everything matching the
    list's current filters (``all_matching``, with the filters posted alongside)."""

    action = forms.ChoiceField(choices=BulkJob.Action.choices)
    all_matching = forms.BooleanField(required=False)


class BulkStartForm(forms.Form):
    """The one confirmation for a batch: a delete needs the number of models typed out and a reason."""

    confirm_count = forms.IntegerField(
        label="Type the number of models to confirm", required=False, min_value=0
    )
    reason = forms.CharField(
        label="Reason (kept in the audit log for every model)",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, job: BulkJob, total: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job, self.total = job, total
        if job.action == BulkJob.Action.DELETE:
            self.fields["confirm_count"].required = True
            self.fields["reason"].required = True
        else:
            del self.fields["confirm_count"]
            del self.fields["reason"]

    def clean_confirm_count(self) -> int | None:
        count: int | None = self.cleaned_data.get("confirm_count")
        if self.job.action == BulkJob.Action.DELETE and count != self.total:
            raise forms.ValidationError(
                f"Type {self.total}, the number of models that will be deleted."
            )
        return count
