from __future__ import annotations

from celery import shared_task

from governance.audit.services import ChainAnchor, audit_chain_head, audit_chain_verify
from governance.core.jobs import job_run
from governance.core.models import JobRun

TASK_NAME = "governance.audit.tasks.verify_audit_chain"


def last_verified_anchor() -> ChainAnchor | None:
    """The chain head recorded by the last successful verification, if any."""
    counts = (
        JobRun.objects.filter(task=TASK_NAME, outcome=JobRun.Outcome.SUCCESS)
        .filter(counts__has_key="head_id")
        .values_list("counts", flat=True)
        .first()
    )
    if counts is None:
        return None
    return ChainAnchor(counts["head_id"], counts["head_hash"])


# Read-only and repeatable: safe to redeliver if a worker dies mid-run.
@shared_task(name=TASK_NAME, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def verify_audit_chain() -> None:
    """Daily chain verification; a break makes the job run fail, visibly, in the admin."""
    with job_run(TASK_NAME) as run:
        head = audit_chain_head()
        checked, broken = audit_chain_verify(anchor=last_verified_anchor())
        run.add("verified", checked)
        if broken:
            raise RuntimeError(f"audit chain broken at event #{broken.event_id}: {broken.reason}")
        if head is not None:
            run.counts.update(head_id=head.event_id, head_hash=head.hash)
