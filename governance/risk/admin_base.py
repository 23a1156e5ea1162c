"""Pieces shared by the risk admins: forms that save through a service, and the history
page read from the audit trail."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.template.response import TemplateResponse
from django.utils.html import format_html

from governance.audit.models import AuditEvent
from governance.core.forms import add_service_errors


class ServiceModelForm(forms.ModelForm):
    """A ModelForm whose validated data is saved by a service (`run_service`), called at the
    end of validation so the service's ValidationError lands on the form's fields. The
    admin then finds everything saved: `save()` and `save_m2m()` do nothing more."""

    acting_user = None  # set by the admin's get_form

    def run_service(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        try:
            self.instance = self.run_service()
        except ValidationError as e:
            add_service_errors(self, e)
        except PermissionDenied as e:
            self.add_error(None, str(e))

    def save(self, commit: bool = True):
        return self.instance

    def save_m2m(self) -> None:
        pass


class ServiceFormAdmin(admin.ModelAdmin):
    """Admin whose add/change forms are ServiceModelForms: hands them the acting user and
    never saves the model itself."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"acting_user": request.user})

    def save_model(self, request, obj, form, change) -> None:
        pass  # the form's service saved it

    def save_related(self, request, form, formsets, change) -> None:
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


def scale_choices(labels: list[str]) -> list[tuple[int, str]]:
    """Choices for a likelihood or impact axis: "3 - Possible"."""
    return [(i, f"{i} - {label}") for i, label in enumerate(labels, start=1)]


def level_pill(matrix, key: str) -> str:
    """A level name with its colour as a small square (SVG fill, so CSP allows it)."""
    level = matrix.level(key)
    return format_html(
        '<svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" fill="{}"/></svg>&nbsp;{}',
        level["colour"],
        level["name"],
    )


class AuditHistoryMixin:
    """The object's history page shows its audit events (who, when, what changed from what
    to what) instead of Django's admin log: the audit trail is the one history, written in
    the same transaction as every change and tamper-evident."""

    object_history_template = "admin/risk/object_history.html"

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        events = AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk)).order_by("-id")
        rows = []
        for event in events[:500]:
            data = event.data or {}
            changes = data.get("changes") or {}
            rows.append(
                {
                    "event": event,
                    "changes": [
                        (name, pair[0], pair[1]) if isinstance(pair, list) and len(pair) == 2 else (name, "", pair)
                        for name, pair in changes.items()
                    ],
                    "other": {k: v for k, v in data.items() if k != "changes"},
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {obj}",
            "subtitle": None,
            "module_name": str(self.opts.verbose_name_plural).capitalize(),
            "object": obj,
            "opts": self.opts,
            "rows": rows,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.object_history_template, context)
