"""The demo data gives the dashboard and the trust report real figures, including one
missed deadline shown as failing (issue 9: "render real figures from the demo data")."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from governance.access.models import User
from governance.trust.evidence import FAILING, KEPT
from governance.trust.models import PublishedCommitment
from governance.trust.report import default_period, trust_report
from tests.helpers import otp_client

pytestmark = pytest.mark.django_db


@pytest.mark.commitment("C12")
@pytest.mark.commitment("C13")
def test_demo_data_fills_the_report_and_the_dashboard(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())  # idempotent: nothing doubles
    report = {e.commitment: e for e in trust_report(default_period()).items}
    assert report["C12"].status == KEPT
    assert report["C12"].summary.startswith("C12: 4 controller notices in the period, 3 within 72 h, median 14 h")
    assert report["C13"].status == FAILING and "Fabrikam Retail" in report["C13"].records[0].label
    assert report["C05"].status == KEPT and "last access review finished" in report["C05"].summary
    assert report["C24"].status == KEPT and report["C24"].figures["policy_checks"] >= 14
    assert report["C11"].figures["reports"] == 4 and report["C16"].figures["delivered"] == 3
    assert report["C03"].figures["grants"] == 1
    assert sorted(PublishedCommitment.objects.values_list("commitment_id", flat=True)) == [
        "C08", "C12", "C14", "C16", "C24",
    ]  # fmt: skip

    officer = otp_client(User.objects.get(username="sofia")).get("/admin/").content.decode()
    assert "SUP-4711" in officer and "Open redirect" not in officer
    manager = otp_client(User.objects.get(username="ines")).get("/admin/").content.decode()
    assert "Notify Contoso Legal" in manager and "Complete incident report for Contoso Legal" in manager
