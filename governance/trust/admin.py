"""Published commitments: which live summaries the public /trust/ page shows (security
officers choose; every change goes through the audited service)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from assyst.admin_site import site
from governance.trust import services
from governance.trust.evidence import COMMITMENT_IDS, REGISTRY
from governance.trust.models import PublishedCommitment


class PublishForm(forms.ModelForm):
    commitment_id = forms.ChoiceField(label="Commitment")

    class Meta:
        model = PublishedCommitment
        fields = ["commitment_id"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        taken = set(PublishedCommitment.objects.values_list("commitment_id", flat=True))
        self.fields["commitment_id"].choices = [
            (cid, f"{cid}: {REGISTRY[cid].title}")
            for cid in COMMITMENT_IDS
            if cid not in taken and REGISTRY[cid].publishable
        ]


@admin.register(PublishedCommitment, site=site)
class PublishedCommitmentAdmin(admin.ModelAdmin):
    form = PublishForm
    list_display = ("commitment_id", "title", "published_at")
    actions = ["unpublish"]

    @admin.display(description="commitment")
    def title(self, obj: PublishedCommitment) -> str:
        entry = REGISTRY.get(obj.commitment_id)
        return entry.title if entry else "-"

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "subtitle": format_html(
                'Shown on the public <a href="{}">trust page</a>; the full report is <a href="{}">here</a>.',
                reverse("trust:public"),
                reverse("admin:trust_report"),
            ),
        }
        return super().changelist_view(request, extra_context)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # publish or unpublish; there is nothing to edit

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        if not request.user.has_perm("trust.delete_publishedcommitment"):
            actions.pop("unpublish", None)
        return actions

    def save_model(self, request, obj, form, change) -> None:
        try:
            created = services.published_commitment_add(
                commitment_id=form.cleaned_data["commitment_id"], acting_user=request.user
            )
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return
        obj.pk, obj.published_at = created.pk, created.published_at

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk is None:  # the service refused it; the message is already shown
            return HttpResponseRedirect(reverse("admin:trust_publishedcommitment_changelist"))
        return super().response_add(request, obj, post_url_continue)

    def log_addition(self, request, obj, message):
        if obj.pk is not None:
            super().log_addition(request, obj, message)

    def delete_model(self, request, obj) -> None:
        services.published_commitment_remove(published=obj, acting_user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            services.published_commitment_remove(published=obj, acting_user=request.user)

    @admin.action(description="Take the selected commitments off the public trust page")
    def unpublish(self, request, queryset) -> None:
        n = 0
        for obj in queryset:
            services.published_commitment_remove(published=obj, acting_user=request.user)
            n += 1
        self.message_user(request, f"{n} commitment(s) taken off the public trust page.")
