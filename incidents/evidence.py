"""Incident evidence files (C19): checked, encrypted at rest, shared with chosen organisations.

* The type is decided from the file's first bytes (PDF, PNG, JPEG signatures; text
  must be valid UTF-8 without control bytes), never from the browser's claim, and must
  be in EVIDENCE_ALLOWED_TYPES. Size is capped by EVIDENCE_MAX_BYTES.
* The bytes are encrypted with the current field-encryption data key (same format and
  key ids as encrypted columns, so key rotation and fallbacks work the same way) and
  written under EVIDENCE_ROOT with a random name; the user's filename is kept only as
  a label. The sha256 of the plaintext is checked again on every read.
* Evidence is shared only with organisations the incident affects: for a specific
  incident, those with an AffectedOrganisation row; a general incident affects everyone.
* Every download is an audit event, written before the bytes are handed out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from governance.access.models import User
from governance.audit.services import audit_record
from governance.core.encrypted_files import EncryptedFileStore
from governance.core.encryption import DataKey
from governance.tenancy.models import Organisation
from incidents.models import AffectedOrganisation, Evidence, Incident
from incidents.selectors import customer_incidents

SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "text/plain": ".txt",
    "text/csv": ".csv",
    "application/json": ".json",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


# --- checks ---------------------------------------------------------------------------------


def sniff_content_type(data: bytes, *, declared: str = "", filename: str = "") -> str | None:
    """The content type the bytes really have, or None if we cannot tell.

    Binary types only by their signature. Anything else counts as text only if it is
    valid UTF-8 without control bytes; it is JSON if it parses as JSON and CSV only if
    the name or the declared type says so (CSV has no signature).
    """
    for magic, content_type in SIGNATURES:
        if data.startswith(magic):
            return content_type
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text):
        return None
    lowered = filename.lower()
    if declared == "application/json" or lowered.endswith(".json"):
        try:
            json.loads(text)
        except ValueError:
            return "text/plain"
        return "application/json"
    if declared == "text/csv" or lowered.endswith(".csv"):
        return "text/csv"
    return "text/plain"


def safe_filename(name: str, content_type: str) -> str:
    """A download name that cannot break a header or a path: ASCII, no separators, right extension."""
    base = os.path.basename(name.replace("\\", "/"))
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    base = _UNSAFE_NAME.sub("_", base).strip(" ._") or "evidence"
    stem, _ext = os.path.splitext(base)
    return f"{(stem or 'evidence')[:100]}{EXTENSIONS.get(content_type, '.bin')}"


def affected_organisation_ids(incident: Incident) -> set[int] | None:
    """Organisations evidence may be shared with; None means any (general incident)."""
    if incident.kind == Incident.Kind.GENERAL:
        return None
    return set(
        AffectedOrganisation.objects.with_scopes_disabled()
        .filter(incident=incident)
        .values_list("organisation_id", flat=True)
    )


def evidence_check_sharing(*, incident: Incident, organisations: Iterable[Organisation]) -> list[Organisation]:
    organisations = list({o.pk: o for o in organisations}.values())
    allowed = affected_organisation_ids(incident)
    if allowed is not None and (outside := [o.name for o in organisations if o.pk not in allowed]):
        raise ValidationError(
            {
                "share_with": "Evidence can only be shared with organisations this incident affects: "
                + ", ".join(outside)
                + "."
            }
        )
    return organisations


def evidence_check_file(uploaded_file: UploadedFile) -> tuple[bytes, str]:
    """Read and check an upload; return (bytes, real content type) or raise ValidationError."""
    limit = settings.EVIDENCE_MAX_BYTES
    if uploaded_file is None:
        raise ValidationError({"uploaded_file": "Choose a file."})
    if uploaded_file.size is not None and uploaded_file.size > limit:
        raise ValidationError({"uploaded_file": f"The file is larger than the limit of {limit // (1024 * 1024)} MB."})
    uploaded_file.seek(0)
    data = uploaded_file.read(limit + 1)
    if len(data) > limit:
        raise ValidationError({"uploaded_file": f"The file is larger than the limit of {limit // (1024 * 1024)} MB."})
    if not data:
        raise ValidationError({"uploaded_file": "The file is empty."})
    content_type = sniff_content_type(
        data, declared=(uploaded_file.content_type or "").split(";")[0].strip(), filename=uploaded_file.name or ""
    )
    if content_type is None or content_type not in settings.EVIDENCE_ALLOWED_TYPES:
        allowed = ", ".join(EXTENSIONS.get(t, t).lstrip(".").upper() for t in settings.EVIDENCE_ALLOWED_TYPES)
        raise ValidationError({"uploaded_file": f"This type of file is not accepted. Accepted: {allowed}."})
    return data, content_type


# --- storage --------------------------------------------------------------------------------


STORE = EncryptedFileStore("EVIDENCE_ROOT", "evidence file")


def evidence_files_rotate(*, key: DataKey, dry_run: bool = False) -> tuple[int, int]:
    """Re-encrypt every evidence file not yet under `key` (hook of `rotate_encryption_key`)."""
    files = Evidence.objects.order_by("pk").values_list("stored_name", "sha256").iterator(chunk_size=200)
    return STORE.rotate(files, key=key, dry_run=dry_run)


# --- services -------------------------------------------------------------------------------


def _require_staff(user: User, perm: str) -> None:
    if not (user.is_active and user.is_staff and user.has_perm(perm)):
        raise PermissionDenied("You cannot do this to evidence.")


def evidence_add(
    *,
    incident: Incident,
    acting_user: User,
    title: str,
    uploaded_file: UploadedFile,
    share_with: Iterable[Organisation] = (),
) -> Evidence:
    """Store an evidence file, encrypted, and share it with affected organisations (C19)."""
    _require_staff(acting_user, "incidents.add_evidence")
    if not title.strip():
        raise ValidationError({"title": "Give the evidence a title."})
    organisations = evidence_check_sharing(incident=incident, organisations=share_with)
    data, content_type = evidence_check_file(uploaded_file)
    stored_name = STORE.write(data)
    try:
        with transaction.atomic():
            evidence = Evidence.objects.create(
                incident=incident,
                title=title.strip(),
                stored_name=stored_name,
                original_name=safe_filename(uploaded_file.name or "", content_type),
                content_type=content_type,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                uploaded_by=acting_user,
            )
            evidence.shared_with.set(organisations)
            audit_record(
                action="incident.evidence_added",
                actor=acting_user,
                obj=evidence,
                data={
                    "incident": incident.pk,
                    "sha256": evidence.sha256,
                    "size": evidence.size,
                    "content_type": content_type,
                    "shared_with": sorted(o.pk for o in organisations),
                },
            )
    except BaseException:
        # The row never existed: do not leave its ciphertext behind.
        STORE.remove(stored_name)
        raise
    return evidence


def evidence_share(*, evidence: Evidence, acting_user: User, organisations: Iterable[Organisation]) -> Evidence:
    """Set exactly which organisations may download the evidence (affected ones only)."""
    _require_staff(acting_user, "incidents.change_evidence")
    organisations = evidence_check_sharing(incident=evidence.incident, organisations=organisations)
    with transaction.atomic():
        before = set(evidence.shared_with.values_list("pk", flat=True))
        evidence.shared_with.set(organisations)
        after = {o.pk for o in organisations}
        audit_record(
            action="incident.evidence_shared",
            actor=acting_user,
            obj=evidence,
            data={"added": sorted(after - before), "removed": sorted(before - after)},
        )
    return evidence


def evidence_open(*, evidence: Evidence, user: User) -> tuple[bytes, str, str]:
    """The plaintext, download name and type, for a customer of a shared organisation
    (who can see the incident) or staff with view_evidence. Every call is audited."""
    organisation_id = None
    membership = getattr(user, "membership", None) if user.is_authenticated else None
    if not user.is_active:
        raise PermissionDenied("You cannot download this evidence.")
    if membership is not None:
        organisation = membership.organisation
        allowed = (
            evidence.shared_with.filter(pk=organisation.pk).exists()
            and customer_incidents(organisation).filter(pk=evidence.incident_id).exists()
        )
        organisation_id = organisation.pk
    else:
        allowed = user.is_staff and user.has_perm("incidents.view_evidence")
    if not allowed:
        raise PermissionDenied("You cannot download this evidence.")
    data = STORE.read(evidence.stored_name, evidence.sha256)
    with transaction.atomic():
        audit_record(
            action="incident.evidence_downloaded",
            actor=user,
            obj=evidence,
            organisation_id=organisation_id,
            data={
                "incident": evidence.incident_id,
                "sha256": evidence.sha256,
                "as": "customer" if membership else "staff",
            },
        )
    return data, safe_filename(evidence.original_name, evidence.content_type), evidence.content_type
