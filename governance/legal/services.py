"""Law-enforcement requests (C27): register, review, decide, tell customers, disclose.

The FAQ's promise, as rules enforced here:
* every request is reviewed (legal process, valid and binding, jurisdiction, scope)
  by legal counsel before any decision;
* an overbroad request can only be objected to or complied with in part, and one
  that fails the legal checks only objected to or rejected; an objection needs its text;
* no disclosure until each affected organisation has been told, unless a
  non-disclosure order, signed off by a second legal reviewer, is in force.

Each change is one function, in a transaction, with its audit event. Audit events
name the request (never a customer notice's organisation), so nothing about a request
ever reaches a customer-facing log while an order may forbid telling them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from governance.access.models import User
from governance.access.roles import LEGAL_COUNSEL
from governance.audit.services import audit_record
from governance.legal import documents
from governance.legal.models import (
    CustomerNotice,
    DataKind,
    Decision,
    Disclosure,
    Instrument,
    LegalDocument,
    LegalRequest,
    NonDisclosureOrder,
    ReviewChecklist,
    iso_country,
)
from governance.tenancy.models import Organisation

Status = LegalRequest.Status
Outcome = Decision.Outcome
# Response deadlines this close (or past) get a reminder to legal counsel.
DEADLINE_WARNING = timedelta(days=2)
# An expired order with customers still not told is re-announced at most this often.
NDO_REMINDER_INTERVAL = timedelta(hours=23)


# --- who may act ------------------------------------------------------------------------------


def is_legal_counsel(user: User) -> bool:
    return (
        user.is_active
        and user.is_staff
        and any(g.name == LEGAL_COUNSEL for g in user.groups.all())
        and user.has_perm("legal.review_legalrequest")
    )


def _require_counsel(user: User, what: str) -> None:
    if not is_legal_counsel(user):
        raise PermissionDenied(f"Only legal counsel can {what}.")


def legal_counsel():
    return Group.objects.get(name=LEGAL_COUNSEL).user_set.filter(is_active=True, is_staff=True)


def _lock(request: LegalRequest) -> LegalRequest:
    return LegalRequest.objects.select_for_update().get(pk=request.pk)


def _today(now: datetime | None = None) -> date:
    return timezone.localdate(now or timezone.now(), UTC)


# --- reads the rules need -------------------------------------------------------------------


def unnotified_organisations(request: LegalRequest) -> list[Organisation]:
    notified = set(CustomerNotice.objects.filter(request=request).values_list("organisation_id", flat=True))
    return [o for o in request.organisations.with_scopes_disabled().order_by("name") if o.pk not in notified]


def order_in_force(request: LegalRequest, *, today: date, signed_off_only: bool = True) -> NonDisclosureOrder | None:
    """The order that prohibits telling the customer today (signed off only, unless asked)."""
    orders = NonDisclosureOrder.objects.filter(request=request, expires_on__gte=today)
    if signed_off_only:
        orders = orders.filter(signed_off_at__isnull=False)
    return orders.order_by("-expires_on").first()


# --- requests -------------------------------------------------------------------------------


def legal_request_create(
    *,
    acting_user: User,
    agency: str,
    jurisdiction_country: str,
    jurisdiction_detail: str = "",
    instrument: str,
    received_at: datetime,
    response_deadline: datetime,
    organisations: Iterable[Organisation],
    data_kinds: Iterable[str],
    description: str,
) -> LegalRequest:
    """Register a request as received; the review comes next."""
    _require_counsel(acting_user, "register legal requests")
    organisations = list({o.pk: o for o in organisations}.values())
    kinds = sorted(set(data_kinds))
    country = jurisdiction_country.strip().upper()
    errors: dict[str, str] = {}
    if not agency.strip():
        errors["agency"] = "Name the agency that sent the request."
    try:
        iso_country(country)
    except ValidationError as exc:
        errors["jurisdiction_country"] = exc.messages[0]
    if instrument not in Instrument.values:
        errors["instrument"] = "Choose the kind of legal instrument."
    if received_at > timezone.now() + timedelta(minutes=5):
        errors["received_at"] = "The request cannot have been received in the future."
    if response_deadline <= received_at:
        errors["response_deadline"] = "The response deadline must be after the request was received."
    if not organisations:
        errors["organisations"] = "Choose the organisations whose data is asked for."
    if not kinds or set(kinds) - set(DataKind.values):
        errors["data_kinds"] = "Choose the kinds of data asked for."
    if not description.strip():
        errors["description"] = "Describe what the request asks for."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        request = LegalRequest.objects.create(
            agency=agency.strip(),
            jurisdiction_country=country,
            jurisdiction_detail=jurisdiction_detail.strip(),
            instrument=instrument,
            received_at=received_at,
            response_deadline=response_deadline,
            data_kinds=kinds,
            description=description.strip(),
            created_by=acting_user,
        )
        request.organisations.set(organisations)
        audit_record(
            action="legal.request_received",
            actor=acting_user,
            obj=request,
            data={
                "instrument": instrument,
                "jurisdiction": country,
                "organisations": sorted(o.pk for o in organisations),
                "data_kinds": kinds,
                "received_at": received_at,
                "response_deadline": response_deadline,
            },
        )
    return request


def checklist_complete(
    *,
    request: LegalRequest,
    acting_user: User,
    legal_process: bool,
    valid_and_binding: bool,
    within_jurisdiction: bool,
    scope_not_overbroad: bool,
    notes: str = "",
) -> ReviewChecklist:
    """Legal counsel answers the four review questions; answering again replaces the review."""
    _require_counsel(acting_user, "review legal requests")
    answers = {
        "legal_process": bool(legal_process),
        "valid_and_binding": bool(valid_and_binding),
        "within_jurisdiction": bool(within_jurisdiction),
        "scope_not_overbroad": bool(scope_not_overbroad),
    }
    now = timezone.now()
    with transaction.atomic():
        request = _lock(request)
        if request.status not in (Status.RECEIVED, Status.REVIEWED):
            raise ValidationError("This request has already been decided; its review can no longer change.")
        checklist, created = ReviewChecklist.objects.update_or_create(
            request=request,
            defaults={**answers, "reviewer": acting_user, "reviewed_at": now, "notes": notes.strip()},
        )
        request.status = Status.REVIEWED
        request.save(update_fields=["status"])
        audit_record(
            action="legal.request_reviewed" if created else "legal.request_re_reviewed",
            actor=acting_user,
            obj=request,
            data=answers,
        )
    return checklist


def legal_request_decide(
    *,
    request: LegalRequest,
    acting_user: User,
    outcome: str,
    objection_text: str = "",
    objected_on: date | None = None,
    notes: str = "",
) -> Decision:
    """Comply, comply in part, object or reject, as the completed review allows."""
    _require_counsel(acting_user, "decide on legal requests")
    if outcome not in Outcome.values:
        raise ValidationError({"outcome": "Choose a decision."})
    now = timezone.now()
    with transaction.atomic():
        request = _lock(request)
        if request.status == Status.RECEIVED:
            raise ValidationError("Complete the review checklist before deciding.")
        if request.status != Status.REVIEWED:
            raise ValidationError("This request has already been decided.")
        checklist = request.checklist
        errors: dict[str, str] = {}
        if not checklist.lawful and outcome in (Outcome.COMPLY, Outcome.PARTIAL):
            errors["outcome"] = (
                "The review found the request not issued under applicable legal process, not valid and binding "
                "or outside the agency's jurisdiction: object or reject."
            )
        elif not checklist.scope_not_overbroad and outcome == Outcome.COMPLY:
            errors["outcome"] = "The review found the scope broader than necessary: object or comply in part."
        if outcome == Outcome.OBJECT:
            if not objection_text.strip():
                errors["objection_text"] = "Give the text of the objection."
            if objected_on is None:
                errors["objected_on"] = "Give the date of the objection."
            elif objected_on > _today(now):
                errors["objected_on"] = "The objection date cannot be in the future."
        if errors:
            raise ValidationError(errors)
        decision = Decision.objects.create(
            request=request,
            outcome=outcome,
            objection_text=objection_text.strip() if outcome == Outcome.OBJECT else "",
            objected_on=objected_on if outcome == Outcome.OBJECT else None,
            notes=notes.strip(),
            decided_by=acting_user,
            decided_at=now,
        )
        request.status = Status.DECIDED if decision.allows_disclosure else Status.CLOSED
        request.save(update_fields=["status"])
        audit_record(
            action=f"legal.request_{outcome}",
            actor=acting_user,
            obj=request,
            data={"outcome": outcome, "objected_on": decision.objected_on},
        )
    return decision


# --- customers first --------------------------------------------------------------------------


def customer_notice_record(
    *,
    request: LegalRequest,
    organisation: Organisation,
    acting_user: User,
    notified_at: datetime,
    method: str,
) -> CustomerNotice:
    """Record that an affected organisation was told about the request."""
    _require_counsel(acting_user, "record customer notices")
    now = timezone.now()
    errors: dict[str, str] = {}
    if method not in CustomerNotice.Method.values:
        errors["method"] = "Choose how the customer was told."
    if notified_at > now + timedelta(minutes=5):
        errors["notified_at"] = "The notice cannot be in the future."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        request = _lock(request)
        if not request.organisations.with_scopes_disabled().filter(pk=organisation.pk).exists():
            raise ValidationError({"organisation": "This organisation is not named in the request."})
        if CustomerNotice.objects.filter(request=request, organisation=organisation).exists():
            raise ValidationError({"organisation": "This organisation has already been told."})
        order = order_in_force(request, today=_today(now), signed_off_only=False)
        if order is not None:
            raise ValidationError(
                f"Non-disclosure order {order.reference} is in force until {order.expires_on:%Y-%m-%d}: "
                "the customer must not be told before it expires."
            )
        notice = CustomerNotice.objects.create(
            request=request, organisation=organisation, notified_at=notified_at, method=method, notified_by=acting_user
        )
        # obj is the request, not the notice: see the module docstring.
        audit_record(
            action="legal.customer_notified",
            actor=acting_user,
            obj=request,
            data={"notice": notice.pk, "organisation": organisation.pk, "method": method, "notified_at": notified_at},
        )
    return notice


def ndo_record(
    *, request: LegalRequest, acting_user: User, reference: str, expires_on: date | None
) -> NonDisclosureOrder:
    """Record a non-disclosure order; it counts once a second reviewer signs it off."""
    _require_counsel(acting_user, "record non-disclosure orders")
    now = timezone.now()
    errors: dict[str, str] = {}
    if not reference.strip():
        errors["reference"] = "Give the order's reference."
    if expires_on is None:
        errors["expires_on"] = "Give the date the order expires (an order without one needs legal advice)."
    elif expires_on < _today(now):
        errors["expires_on"] = "This order has already expired."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        request = _lock(request)
        if not request.open:
            raise ValidationError("This request is closed.")
        order = NonDisclosureOrder.objects.create(
            request=request,
            reference=reference.strip(),
            expires_on=expires_on,
            recorded_by=acting_user,
            recorded_at=now,
        )
        audit_record(
            action="legal.ndo_recorded",
            actor=acting_user,
            obj=request,
            data={"order": order.pk, "reference": order.reference, "expires_on": expires_on},
        )
    return order


def ndo_sign_off(*, order: NonDisclosureOrder, acting_user: User) -> NonDisclosureOrder:
    """A second legal reviewer, not the one who recorded the order, confirms it."""
    _require_counsel(acting_user, "sign off non-disclosure orders")
    now = timezone.now()
    with transaction.atomic():
        order = NonDisclosureOrder.objects.select_for_update().select_related("request").get(pk=order.pk)
        if order.signed_off_at is not None:
            raise ValidationError("This order has already been signed off.")
        if order.recorded_by_id == acting_user.pk:
            raise PermissionDenied("A second reviewer must sign off the order: not the person who recorded it.")
        if not order.in_force(_today(now)):
            raise ValidationError("This order has expired; it can no longer be signed off.")
        order.signed_off_by = acting_user
        order.signed_off_at = now
        order.save(update_fields=["signed_off_by", "signed_off_at"])
        audit_record(
            action="legal.ndo_signed_off",
            actor=acting_user,
            obj=order.request,
            data={"order": order.pk, "reference": order.reference, "recorded_by": order.recorded_by_id},
        )
    return order


# --- disclosure -------------------------------------------------------------------------------


def disclosure_record(
    *, request: LegalRequest, acting_user: User, what: str, disclosed_to: str, disclosed_at: datetime
) -> Disclosure:
    """Record data handed over. Refused until every affected organisation has been told,
    unless a signed-off non-disclosure order is in force (C27)."""
    _require_counsel(acting_user, "record disclosures")
    now = timezone.now()
    errors: dict[str, str] = {}
    if not what.strip():
        errors["what"] = "Say what was disclosed."
    if not disclosed_to.strip():
        errors["disclosed_to"] = "Say to whom it was disclosed."
    if disclosed_at > now + timedelta(minutes=5):
        errors["disclosed_at"] = "The disclosure cannot be in the future."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        request = _lock(request)
        decision = Decision.objects.filter(request=request).first()
        if decision is None:
            raise ValidationError("Nothing can be disclosed before the request is reviewed and decided.")
        if not decision.allows_disclosure:
            raise ValidationError(
                f"The decision was to {decision.get_outcome_display().lower()}: nothing is disclosed."
            )
        order = None
        if unnotified := unnotified_organisations(request):
            order = order_in_force(request, today=_today(now))
            if order is None:
                raise ValidationError(
                    f"{len(unnotified)} affected organisation(s) have not been told yet. Tell each customer "
                    "before disclosing, unless a non-disclosure order signed off by a second reviewer is in force."
                )
        disclosure = Disclosure.objects.create(
            request=request,
            what=what.strip(),
            disclosed_to=disclosed_to.strip(),
            disclosed_at=disclosed_at,
            disclosed_by=acting_user,
            under_order=order,
        )
        request.status = Status.DISCLOSED
        request.save(update_fields=["status"])
        audit_record(
            action="legal.data_disclosed",
            actor=acting_user,
            obj=request,
            data={
                "disclosure": disclosure.pk,
                "disclosed_at": disclosed_at,
                "under_order": order.pk if order else None,
                "unnotified_organisations": [o.pk for o in unnotified],
            },
        )
    return disclosure


# --- documents --------------------------------------------------------------------------------


def legal_document_add(
    *, request: LegalRequest, acting_user: User, title: str, uploaded_file: UploadedFile
) -> LegalDocument:
    """Store a document of the request, encrypted at rest."""
    _require_counsel(acting_user, "add legal documents")
    if not title.strip():
        raise ValidationError({"title": "Give the document a title."})
    data, content_type = documents.check_file(uploaded_file)
    stored_name = documents.write_encrypted(data)
    try:
        with transaction.atomic():
            document = LegalDocument.objects.create(
                request=request,
                title=title.strip(),
                stored_name=stored_name,
                original_name=documents.safe_filename(uploaded_file.name or "", content_type),
                content_type=content_type,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                uploaded_by=acting_user,
            )
            audit_record(
                action="legal.document_added",
                actor=acting_user,
                obj=request,
                data={"document": document.pk, "sha256": document.sha256, "size": document.size},
            )
    except BaseException:
        documents.remove(stored_name)  # the row never existed: leave no ciphertext behind
        raise
    return document


def legal_document_open(*, document: LegalDocument, user: User) -> tuple[bytes, str, str]:
    """Plaintext, download name and type for staff who may view legal documents; audited."""
    if not (user.is_active and user.is_staff and user.has_perm("legal.view_legaldocument")):
        raise PermissionDenied("You cannot download legal documents.")
    data = documents.read_decrypted(document)
    with transaction.atomic():
        audit_record(
            action="legal.document_downloaded",
            actor=user,
            obj=document.request,
            data={"document": document.pk, "sha256": document.sha256},
        )
    return data, documents.safe_filename(document.original_name, document.content_type), document.content_type


# --- reminders (beat) -------------------------------------------------------------------------


def _mail_on_commit(subject: str, template: str, context: dict) -> int:
    recipients = sorted({u.email for u in legal_counsel() if u.email})
    if not recipients:
        return 0
    body = render_to_string(template, {**context, "site_url": settings.SITE_URL})
    transaction.on_commit(lambda: send_mail(f"[Assyst] {subject}", body, None, recipients))
    return len(recipients)


def legal_reminders_send(*, now: datetime | None = None) -> dict[str, int]:
    """Daily: remind legal counsel of response deadlines within two days (once per request)
    and of expired orders whose customers are still not told (at most once a day)."""
    now = now or timezone.now()
    today = _today(now)
    counts = {"deadline_reminders": 0, "expired_order_reminders": 0}
    due = LegalRequest.objects.filter(
        status__in=[Status.RECEIVED, Status.REVIEWED, Status.DECIDED],
        deadline_reminded_at__isnull=True,
        response_deadline__lte=now + DEADLINE_WARNING,
    ).values_list("pk", flat=True)
    for pk in list(due):
        with transaction.atomic():
            request = (
                LegalRequest.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, deadline_reminded_at__isnull=True)
                .first()
            )
            if request is None:
                continue
            request.deadline_reminded_at = now
            request.save(update_fields=["deadline_reminded_at"])
            overdue = request.response_deadline <= now
            _mail_on_commit(
                f"{'Overdue' if overdue else 'Due soon'}: response to {request} by "
                f"{request.response_deadline:%Y-%m-%d %H:%M} UTC",
                "email/legal_deadline.txt",
                {"request": request, "overdue": overdue},
            )
            audit_record(action="legal.deadline_reminder", obj=request, data={"deadline": request.response_deadline})
            counts["deadline_reminders"] += 1

    expired = NonDisclosureOrder.objects.filter(
        expires_on__lt=today,
        request__status__in=[Status.RECEIVED, Status.REVIEWED, Status.DECIDED, Status.DISCLOSED],
    ).exclude(expiry_reminded_at__gt=now - NDO_REMINDER_INTERVAL)
    for pk in list(expired.values_list("pk", flat=True)):
        with transaction.atomic():
            order = NonDisclosureOrder.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if order is None:
                continue
            request = order.request
            unnotified = unnotified_organisations(request)
            # Another order still in force keeps the customer from being told.
            if not unnotified or order_in_force(request, today=today, signed_off_only=False) is not None:
                continue
            order.expiry_reminded_at = now
            order.save(update_fields=["expiry_reminded_at"])
            _mail_on_commit(
                f"Non-disclosure order expired: tell the customers of {request}",
                "email/legal_ndo_expired.txt",
                {"request": request, "order": order, "unnotified": len(unnotified)},
            )
            audit_record(
                action="legal.ndo_expired_reminder",
                obj=request,
                data={"order": order.pk, "expires_on": order.expires_on, "unnotified": [o.pk for o in unnotified]},
            )
            counts["expired_order_reminders"] += 1
    return counts
