"""The risk register (C26): matrix as data with versions, scoring, controls, import/export
round trips, heat maps, history, and the admin as the risk owner and security officer use it."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from import_export.formats.base_formats import CSV, XLSX

from governance.access.roles import AUDITOR
from governance.audit.models import AuditEvent
from governance.risk import changes, selectors, services
from governance.risk.matrix import DEFAULT_GRID, DEFAULT_IMPACT, DEFAULT_LIKELIHOOD, matrix_active, matrix_publish
from governance.risk.models import Change, Control, Risk
from governance.risk.resources import ControlResource, RiskResource
from tests.factories import StaffFactory
from tests.factories_risk import bulk_risks, make_change, make_risk, risk_owner, security_officer
from tests.helpers import otp_client

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C26")]


# --- matrix and scoring -------------------------------------------------------------------------


def test_default_matrix_is_5x5_with_named_levels_and_scores_follow_it():
    matrix = matrix_active()
    assert matrix.size == (5, 5) and [lv["name"] for lv in matrix.levels] == ["Low", "Medium", "High", "Critical"]
    assert services.risk_score(matrix=matrix, likelihood=1, impact=1) == "low"
    assert services.risk_score(matrix=matrix, likelihood=5, impact=5) == "critical"
    with pytest.raises(ValidationError, match="between 1 and 5"):
        services.risk_score(matrix=matrix, likelihood=6, impact=1)


def test_a_new_matrix_version_leaves_old_scores_their_meaning():
    officer = security_officer()
    risk = make_risk(inherent_likelihood=3, inherent_impact=3)  # 9: medium on v1
    v1 = risk.matrix
    strict = [row[:] for row in DEFAULT_GRID]
    strict[2][2] = "high"
    levels = [{**lv, "review_months": min(lv["review_months"], 6)} for lv in v1.levels]
    v2 = matrix_publish(
        acting_user=officer,
        name=v1.name,
        likelihood_labels=DEFAULT_LIKELIHOOD,
        impact_labels=DEFAULT_IMPACT,
        levels=levels,
        grid=strict,
    )
    assert v2.version == 2 and v2.is_active
    v1.refresh_from_db()
    risk.refresh_from_db()
    assert not v1.is_active and risk.matrix == v1 and risk.inherent_level == "medium"
    # Re-scoring moves the risk to the active version.
    risk = services.risk_update(risk=risk, acting_user=risk.owner, residual_impact=2)
    assert risk.matrix == v2 and risk.inherent_level == "high"
    with pytest.raises(ValidationError, match="review_months"):
        matrix_publish(
            acting_user=officer,
            name="Too slow",
            likelihood_labels=DEFAULT_LIKELIHOOD,
            impact_labels=DEFAULT_IMPACT,
            levels=[{**lv, "review_months": 18} for lv in levels],
            grid=strict,
        )


def test_owner_is_one_person_or_one_team():
    owner = risk_owner()
    with pytest.raises(ValidationError, match="exactly one"):
        make_risk(owner=owner, owner_team=Group.objects.create(name="Ops"))
    with pytest.raises(ValidationError, match="exactly one"):
        make_risk(owner=None, owner_team=None, acting_user=owner)


def test_accepted_only_through_an_acceptance():
    risk = make_risk()
    with pytest.raises(ValidationError, match="signed risk acceptance"):
        services.risk_update(risk=risk, acting_user=risk.owner, status=Risk.Status.ACCEPTED)


# --- import and export ------------------------------------------------------------------------


def _register() -> list[dict]:
    rows = []
    for risk in Risk.objects.select_related("owner", "owner_team", "matrix").order_by("code"):
        snap = services.risk_snapshot(risk)
        snap["controls"] = sorted(risk.controls.values_list("code", flat=True))
        rows.append(snap)
    return rows


def _controls() -> list[dict]:
    return [
        {f: getattr(c, f) for f in ("code", "name", "description", "owner_id", "status", "evidence", "last_tested_on")}
        for c in Control.objects.order_by("code")
    ]


@pytest.fixture
def register():
    from datetime import timedelta

    from django.utils import timezone

    owner = risk_owner(username="ravi")
    other = risk_owner(username="mia")
    team = Group.objects.create(name="Platform team")
    mfa = services.control_save(
        acting_user=owner, code="CTL-001", name="MFA for staff", owner=owner, status="tested", evidence="Report Q1"
    )
    enc = services.control_save(
        acting_user=owner, code="CTL-002", name="Disk encryption", status="implemented", last_tested_on=date(2026, 3, 1)
    )
    services.control_save(acting_user=owner, code="CTL-003", name='=HYPERLINK("x")', status="planned")
    make_risk(owner=owner, code="RSK-001", controls=[mfa, enc])
    make_risk(owner=other, code="RSK-002", title="=cmd|' /C calc'!A0", description='Multi\nline, with "quotes"')
    make_risk(owner=None, owner_team=team, code="RSK-003", acting_user=owner, controls=[enc], category="supplier")
    closed = make_risk(owner=owner, code="RSK-004", residual_likelihood=1, residual_impact=1)
    services.risk_update(risk=closed, acting_user=owner, status=Risk.Status.CLOSED)
    accepted = make_risk(owner=owner, code="RSK-005")
    expiry = timezone.localdate() + timedelta(days=90)
    services.risk_accept(risk=accepted, acting_user=owner, reason="Fine.", expires_on=expiry)
    return owner


@pytest.mark.parametrize("fmt", [CSV, XLSX], ids=["csv", "xlsx"])
def test_import_round_trips_the_register_and_controls_without_loss(register, fmt):
    importer = security_officer()
    risks_before, controls_before = _register(), _controls()
    risk_file = fmt().export_data(RiskResource().export())
    control_file = fmt().export_data(ControlResource().export())
    if fmt is CSV:
        assert "'=cmd" in risk_file and "'=HYPERLINK" in control_file  # formulas neutralised in the file

    # Damage the register: edits, a lost link, a deleted risk and control.
    Risk.objects.filter(code="RSK-003").update(title="Renamed by mistake", inherent_likelihood=1)
    Risk.objects.get(code="RSK-001").controls.clear()
    Risk.objects.filter(code="RSK-002").delete()
    Control.objects.filter(code="CTL-003").delete()
    Control.objects.filter(code="CTL-001").update(status="planned")

    for resource, data in ((ControlResource(), control_file), (RiskResource(), risk_file)):
        dataset = fmt().create_dataset(data)
        result = resource.import_data(dataset, dry_run=False, user=importer)
        assert not result.has_errors() and not result.has_validation_errors(), result.invalid_rows

    assert _controls() == controls_before
    assert _register() == risks_before
    # Imported rows are audited like any other change, with the importer as actor.
    recreated = AuditEvent.objects.filter(action="risk.create", object_repr__startswith="RSK-002", actor=importer)
    assert recreated.count() == 1


def test_import_reports_errors_per_row_and_changes_nothing(register):
    owner = register
    before = _register()
    csv = (
        "code,title,owner,owner_team,inherent_likelihood,inherent_impact,residual_likelihood,residual_impact,"
        "controls,status,category,treatment\n"
        "RSK-010,Good row,ravi,,2,2,1,1,CTL-001,open,security,mitigate\n"
        "RSK-011,Unknown owner,nobody,,2,2,1,1,,open,security,mitigate\n"
        "RSK-012,Unknown control,ravi,,2,2,1,1,CTL-001|CTL-999,open,security,mitigate\n"
        "RSK-013,Off the matrix,ravi,,7,2,1,1,,open,security,mitigate\n"
        "RSK-014,Accepted by import,ravi,,2,2,1,1,,accepted,security,mitigate\n"
        "RSK-015,Team that does not exist,,Nobody team,2,2,1,1,,open,security,mitigate\n"
    )
    result = RiskResource().import_data(CSV().create_dataset(csv), dry_run=False, user=owner)
    errors = {row.number: row.error_dict for row in result.invalid_rows}
    assert sorted(errors) == [2, 3, 4, 5, 6]
    assert "no user named 'nobody'" in str(errors[2]["owner"])
    assert "CTL-999" in str(errors[3]["controls"])
    assert "between 1 and 5" in str(errors[4])
    assert "signed risk acceptance" in str(errors[5])
    assert "Nobody team" in str(errors[6]["owner_team"])
    assert _register() == before  # one transaction: nothing half-imported


def test_import_and_export_in_the_admin(register):
    owner = register
    # Imports can touch any risk: security officers only; risk owners export.
    assert otp_client(owner).get(reverse("admin:risk_risk_import")).status_code == 403
    assert otp_client(owner).get(reverse("admin:risk_risk_export")).status_code == 200
    client = otp_client(security_officer())
    assert client.get(reverse("admin:risk_risk_import")).status_code == 200
    assert client.get(reverse("admin:risk_risk_export")).status_code == 200
    csv = (
        "code,title,owner,owner_team,inherent_likelihood,inherent_impact,residual_likelihood,residual_impact,"
        "controls,status,category,treatment\n"
        "RSK-020,Imported in the admin,ravi,,3,3,2,2,CTL-001|CTL-002,open,privacy,mitigate\n"
    )
    upload = SimpleUploadedFile("risks.csv", csv.encode(), content_type="text/csv")
    preview = client.post(reverse("admin:risk_risk_import"), {"resource": "0", "format": "0", "import_file": upload})
    assert preview.status_code == 200 and "Imported in the admin" in preview.content.decode()
    confirm = preview.context["confirm_form"].initial
    done = client.post(reverse("admin:risk_risk_process_import"), confirm)
    assert done.status_code == 302
    risk = Risk.objects.get(code="RSK-020")
    assert risk.inherent_level == "medium" and sorted(risk.controls.values_list("code", flat=True)) == [
        "CTL-001",
        "CTL-002",
    ]
    # The auditor may look and export, never import.
    auditor = otp_client(StaffFactory(role=AUDITOR))
    assert auditor.get(reverse("admin:risk_risk_changelist")).status_code == 200
    assert auditor.get(reverse("admin:risk_risk_import")).status_code == 403


# --- heat map, history, admin -----------------------------------------------------------------------


def test_heat_map_counts_live_risks_per_cell_with_levels_colours_and_links():
    owner = risk_owner()
    make_risk(owner=owner, inherent_likelihood=5, inherent_impact=5, residual_likelihood=1, residual_impact=1)
    make_risk(owner=owner, inherent_likelihood=5, inherent_impact=5, residual_likelihood=2, residual_impact=3)
    closed = make_risk(owner=owner, inherent_likelihood=5, inherent_impact=5)
    services.risk_update(risk=closed, acting_user=owner, status=Risk.Status.CLOSED)

    inherent = selectors.heat_map("inherent")
    cells = {(c["likelihood"], c["impact"]): c for row in inherent["rows"] for c in row["cells"]}
    assert len(cells) == 25 and inherent["total"] == 2
    top = cells[(5, 5)]
    assert (top["count"], top["level_name"], top["colour"]) == (2, "Critical", "#c62828")
    assert top["url"].startswith(reverse("admin:risk_risk_changelist") + "?inherent_likelihood=5&inherent_impact=5")
    assert inherent["rows"][0]["likelihood"] == 5  # highest likelihood on top
    residual = selectors.heat_map("residual")
    assert {lv["key"]: lv["count"] for lv in residual["levels"]} == {"low": 1, "medium": 1, "high": 0, "critical": 0}
    with pytest.raises(ValueError):
        selectors.heat_map("current")

    svg = render_to_string("risk/_heatmap.html", {"heatmap": inherent})
    assert "<svg" in svg and 'fill="#c62828"' in svg and "2 risks" in svg and "style=" not in svg

    # The link opens the changelist filtered to exactly those risks.
    body = otp_client(security_officer()).get(top["url"]).content.decode()
    assert "2 risks" in body or "2 results" in body


def test_risk_history_in_the_admin_shows_who_changed_what_and_when():
    owner = risk_owner(username="ravi")
    risk = make_risk(owner=owner, code="RSK-042")
    services.risk_update(risk=risk, acting_user=owner, title="Laptop theft", residual_impact=5)
    body = otp_client(security_officer()).get(reverse("admin:risk_risk_history", args=[risk.pk])).content.decode()
    assert "risk.update" in body and "risk.rescore" in body and "Laptop theft" in body and "ravi" in body


def test_risk_owner_and_security_officer_use_the_register_in_the_admin():
    owner = risk_owner(username="ravi")
    client = otp_client(owner)
    assert client.get(reverse("admin:risk_risk_add")).status_code == 200
    response = client.post(
        reverse("admin:risk_risk_add"),
        {
            "code": "",
            "title": "Supplier outage stops ticket intake",
            "description": "",
            "category": "supplier",
            "owner": owner.pk,
            "assets": "Support desk",
            "threat": "Supplier outage",
            "vulnerability": "Single supplier",
            "inherent_likelihood": "3",
            "inherent_impact": "4",
            "residual_likelihood": "2",
            "residual_impact": "4",
            "treatment": "mitigate",
            "status": "open",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    risk = Risk.objects.get()
    assert (risk.code, risk.inherent_level, risk.residual_level) == ("RSK-001", "high", "medium")

    # Both an owner and a team: the form shows the service's error on the page.
    response = client.post(
        reverse("admin:risk_risk_change", args=[risk.pk]),
        {
            "code": risk.code,
            "title": risk.title,
            "category": "supplier",
            "owner": owner.pk,
            "owner_team": Group.objects.get(name="Risk owner").pk,
            "inherent_likelihood": "3",
            "inherent_impact": "4",
            "residual_likelihood": "2",
            "residual_impact": "4",
            "treatment": "mitigate",
            "status": "open",
        },
    )
    assert response.status_code == 200 and "exactly one person or one team" in response.content.decode()

    # Accept the residual risk in the admin.
    response = client.post(
        reverse("admin:risk_riskacceptance_add"),
        {"risk": risk.pk, "reason": "Second supplier contracted.", "expires_on": "2099-01-01"},
    )
    assert response.status_code == 200 and "no later than" in response.content.decode()

    officer = otp_client(security_officer())
    for name in ("risk", "control", "riskacceptance", "riskreview", "reviewreminder", "change", "riskmatrix"):
        assert officer.get(reverse(f"admin:risk_{name}_changelist")).status_code == 200, name
    assert officer.get(reverse("admin:risk_riskmatrix_add")).status_code == 200
    assert client.get(reverse("admin:risk_riskmatrix_add")).status_code == 403
    body = officer.get(reverse("admin:risk_risk_changelist")).content.decode()
    assert "Inherent risk" in body and "Residual risk" in body and "<svg" in body


def _count(client, url) -> int:
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("role", ["Risk owner", "Security officer"])
def test_changelists_run_a_fixed_number_of_queries_at_10_and_1000_risks(role):
    owner = risk_owner()
    client = otp_client(StaffFactory(role=role))
    urls = [reverse("admin:risk_risk_changelist"), reverse("admin:risk_change_changelist")]
    urls += [reverse("admin:risk_control_changelist"), reverse("admin:risk_risk_changelist") + "?review=overdue"]

    def grow(n: int) -> None:
        bulk_risks(n, owner=owner)
        for i in range(n // 10):
            change = make_change(requester=owner, major=bool(i % 2))
            if i % 2:
                changes.change_assess(
                    change=change, acting_user=owner, summary="ok", risks=Risk.objects.order_by("?")[:2]
                )
        for i in range(min(n, 50)):
            services.control_save(acting_user=owner, name=f"Control {n}-{i}").risks.add(*Risk.objects.all()[:3])

    grow(10)
    small = {u: _count(client, u) for u in urls}
    grow(990)
    assert Risk.objects.count() == 1000 and Change.objects.count() == 100
    large = {u: _count(client, u) for u in urls}
    assert small == large


def test_risk_owners_change_only_their_own_risks():
    ravi, mia = risk_owner(), risk_owner()
    mine, theirs = make_risk(owner=ravi), make_risk(owner=mia)
    team = Group.objects.create(name="Platform team")
    team.user_set.add(ravi)
    teams = make_risk(owner=None, owner_team=team, acting_user=mia)
    with pytest.raises(PermissionDenied):
        services.risk_update(risk=theirs, acting_user=ravi, title="Not mine")
    services.risk_update(risk=mine, acting_user=ravi, title="Mine")
    services.risk_update(risk=teams, acting_user=ravi, title="My team's")
    services.risk_update(risk=theirs, acting_user=security_officer(), title="Officer may")

    client = otp_client(ravi)
    page = client.get(reverse("admin:risk_risk_change", args=[theirs.pk]))
    assert page.status_code == 200 and 'name="title"' not in page.content.decode()  # read-only
    assert 'name="title"' in client.get(reverse("admin:risk_risk_change", args=[mine.pk])).content.decode()
    response = client.post(reverse("admin:risk_risk_change", args=[theirs.pk]), {"title": "x"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("name", "fmt", "body"), [("x.xlsx", "1", b"\x00\x01garbage"), ("x.csv", "0", b"\xff\xfe\x00")]
)
def test_garbage_import_files_get_a_form_error_not_a_500(name, fmt, body):
    client = otp_client(security_officer())
    upload = SimpleUploadedFile(name, body)
    response = client.post(reverse("admin:risk_risk_import"), {"resource": "0", "format": fmt, "import_file": upload})
    assert response.status_code == 200
    assert Risk.objects.count() == 0
    for url in (
        reverse("admin:risk_risk_changelist") + "?inherent_likelihood=abc",
        reverse("admin:risk_risk_history", args=[999999]),
        reverse("admin:risk_risk_change", args=["not-a-number"]),
    ):
        assert client.get(url).status_code in (200, 302, 404), url
