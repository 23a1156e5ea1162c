from __future__ import annotations

from celery import shared_task

from governance.audit.services import audit_chain_verify
from governance.core.jobs import job_run


@shared_task(name="governance.audit.tasks.verify_audit_chain", ignore_result=True)
def verify_audit_chain() -> None:
    """Daily chain verification; a break makes the job run fail, visibly, in the admin."""
    with job_run("governance.audit.tasks.verify_audit_chain") as run:
        checked, broken = audit_chain_verify()
        run.add("verified", checked)
        if broken:
            raise RuntimeError(f"audit chain broken at event #{broken.event_id}: {broken.reason}")
