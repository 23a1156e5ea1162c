"""Admin for access-review campaigns (C05).

Campaigns come only from the daily task: nobody adds, edits or deletes them by hand.
Security officers decide items with the changelist actions and complete a campaign with
its button; every decision goes through `governance.access.reviews`. Auditors see
everything, export the evidence and change nothing.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from assyst.admin_site import site
from governance.access import reviews
from governance.access.models import AccessReviewCampaign, AccessReviewItem
from governance.core.admin import ReadOnlyAdmin

PENDING = AccessReviewItem.Decision.PENDING
DECIDE_ACTIONS = ("certify_selected", "revoke_selected")


def _error_text(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def _subject(item: AccessReviewItem) -> str:
    """What the item is about, without customer personal data (usernames only)."""
    if item.kind == AccessReviewItem.Kind.ROLE:
        return f"{item.user.get_username()} as {item.role}"
    grant = item.grant
    staff = ", ".join(sorted(u.get_username() for u in grant.staff.all()))
    return (
        f"Grant #{grant.pk} to {grant.organisation.name} for {staff} "
        f"({grant.starts_at:%Y-%m-%d %H:%M} to {grant.ends_at:%Y-%m-%d %H:%M} UTC, {grant.state(timezone.now())})"
    )


class ReviewItemInline(admin.TabularInline):
    """The campaign's items, read-only; decisions are taken on the item changelist."""

    model = AccessReviewItem
    fields = ("kind", "subject", "decision", "decided_by", "decided_at", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("grant__organisation", "user", "decided_by")
            .prefetch_related("grant__staff")
        )

    @admin.display(description="access reviewed")
    def subject(self, obj: AccessReviewItem) -> str:
        return _subject(obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AccessReviewCampaign, site=site)
class AccessReviewCampaignAdmin(ReadOnlyAdmin):
    """Periodic access reviews: opened by the daily task, completed by a security officer."""

    list_display = ("period", "status", "due_at", "progress", "overdue", "completed_at", "completed_by")
    list_filter = ("status",)
    list_select_related = ("completed_by",)
    inlines = [ReviewItemInline]
    show_full_result_count = False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(item_count=Count("items"), decided_count=Count("items", filter=~Q(items__decision=PENDING)))
        )

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "progress", "overdue"]

    @admin.display(description="period", ordering="period_start")
    def period(self, obj: AccessReviewCampaign) -> str:
        return f"{obj.period_start:%Y-%m-%d} to {obj.period_end - timedelta(days=1):%Y-%m-%d}"

    @admin.display(description="progress")
    def progress(self, obj: AccessReviewCampaign) -> str:
        total = getattr(obj, "item_count", None)
        decided = getattr(obj, "decided_count", None)
        if total is None:
            total = obj.items.count()
            decided = obj.items.exclude(decision=PENDING).count()
        return f"{decided}/{total} decided"

    @admin.display(description="overdue", boolean=True)
    def overdue(self, obj: AccessReviewCampaign) -> bool:
        return obj.status == AccessReviewCampaign.Status.OPEN and obj.due_at <= timezone.now()

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<int:pk>/export.csv",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            path(
                "<int:pk>/complete/",
                self.admin_site.admin_view(self.complete_view),
                name="{}_{}_complete".format(*info),
            ),
            *super().get_urls(),
        ]

    def _may_decide(self, request) -> bool:
        return request.user.has_perm("access.change_accessreviewcampaign")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {
            "can_complete": self._may_decide(request),
            "items_url": reverse("admin:access_accessreviewitem_changelist") + f"?campaign__id__exact={object_id}",
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def export_view(self, request, pk: int):
        """The evidence export, for anyone who may view campaigns (auditors included)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        campaign = get_object_or_404(AccessReviewCampaign.objects.select_related("completed_by"), pk=pk)
        response = HttpResponse(reviews.campaign_csv(campaign), content_type="text/csv; charset=utf-8")
        filename = f"access-review-{campaign.period_start:%Y-%m-%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def complete_view(self, request, pk: int):
        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        if not self._may_decide(request):
            raise PermissionDenied
        campaign = get_object_or_404(AccessReviewCampaign, pk=pk)
        try:
            reviews.campaign_complete(campaign=campaign, acting_user=request.user)
        except (ValidationError, PermissionDenied) as exc:
            self.message_user(request, _error_text(exc), messages.ERROR)
        else:
            self.message_user(request, f"{campaign} completed.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:access_accessreviewcampaign_change", args=[campaign.pk]))


class RevokeForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why the access is not needed. Kept with the review evidence.",
    )


@admin.register(AccessReviewItem, site=site)
class AccessReviewItemAdmin(admin.ModelAdmin):
    """The items of all campaigns: security officers certify or revoke them here."""

    list_display = ("__str__", "campaign", "kind", "subject", "decision", "decided_by", "decided_at", "note")
    list_filter = ("campaign", "kind", "decision")
    list_select_related = ("campaign", "grant__organisation", "user", "decided_by")
    actions = DECIDE_ACTIONS
    list_per_page = 100
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("grant__staff")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="access reviewed")
    def subject(self, obj: AccessReviewItem) -> str:
        return _subject(obj)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The detail page is read-only; the change permission only unlocks the actions.
        return obj is None and super().has_change_permission(request)

    def changelist_view(self, request, extra_context=None):
        # Django silently ignores an action the user lacks; a decision attempt gets a 403.
        if request.method == "POST" and request.POST.get("action") in DECIDE_ACTIONS:
            if not self.has_change_permission(request):
                raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def _decide_each(self, request, queryset, service, verb: str, **kwargs) -> None:
        done = 0
        for item in queryset:
            try:
                service(item=item, acting_user=request.user, **kwargs)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, f"{item}: {_error_text(exc)}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} item(s).", messages.SUCCESS)

    @admin.action(description="Certify selected (access was needed)", permissions=["change"])
    def certify_selected(self, request, queryset):
        self._decide_each(request, queryset, reviews.review_item_certify, "Certified")

    @admin.action(description="Revoke selected (ends the access now)", permissions=["change"])
    def revoke_selected(self, request, queryset):
        form = RevokeForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._decide_each(request, queryset, reviews.review_item_revoke, "Revoked", note=form.cleaned_data["note"])
            return None  # back to the changelist
        context = {
            **self.admin_site.each_context(request),
            "title": "Revoke access",
            "opts": self.opts,
            "items": [(item, _subject(item)) for item in queryset],
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "revoke_selected",
        }
        return TemplateResponse(request, "admin/access/accessreviewcampaign/revoke_items.html", context)
