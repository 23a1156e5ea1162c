"""Who may do what with vulnerability reports (C11, C25).

Reading reports is a model permission (security officers; auditors read evidence).
Triage is the custom `triage_vulnerabilityreport` permission. The reporter's contact
address is personal data kept for one purpose, answering the reporter, so only active
staff in the Security officer role see it: not auditors, not a bare superuser.
"""

from __future__ import annotations

from typing import Literal

from governance.access.models import User
from governance.access.roles import SECURITY_OFFICER

Action = Literal["view", "triage", "view_contact"]

_PERMS = {
    "view": "disclosure.view_vulnerabilityreport",
    "triage": "disclosure.triage_vulnerabilityreport",
}


def is_security_officer(user: User) -> bool:
    return bool(user.is_active and user.is_staff and any(g.name == SECURITY_OFFICER for g in user.groups.all()))


def can(user: User, action: Action) -> bool:
    """Reports carry no tenant, so the question is per role, not per object."""
    if not (user.is_active and user.is_staff):
        return False
    if action == "view_contact":
        return is_security_officer(user) and user.has_perm(_PERMS["triage"])
    return user.has_perm(_PERMS[action])
