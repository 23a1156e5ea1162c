"""Cross-cutting audit forwarding: authentication, permissions and admin actions (C25).

Signals are used here only to forward facts into the audit trail, never for rules.
"""

from __future__ import annotations

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from governance.audit.services import audit_record

User = get_user_model()


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs) -> None:
    # Superuser sign-ins are flagged: the role is for emergencies and opens no customer data.
    if user.is_superuser:
        audit_record(action="auth.login_superuser", actor=user, obj=user, data={"flag": "superuser"})
    else:
        audit_record(action="auth.login", actor=user, obj=user)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_record(action="auth.logout", actor=user, obj=user)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    audit_record(action="auth.login_failed", actor_repr=username, data={"username": username})


_ADMIN_ACTIONS = {ADDITION: "admin.add", CHANGE: "admin.change", DELETION: "admin.delete"}


@receiver(post_save, sender=LogEntry)
def _admin_log_entry(sender, instance: LogEntry, created: bool, **kwargs) -> None:
    if not created:
        return
    audit_record(
        action=_ADMIN_ACTIONS.get(instance.action_flag, "admin.other"),
        actor=instance.user,
        data={
            "content_type": instance.content_type.natural_key() if instance.content_type_id else None,
            "object_id": instance.object_id,
            "change_message": instance.get_change_message(),
        },
        object_repr=instance.object_repr,
    )


def _m2m_audit(action_prefix: str, instance, action: str, model, pk_set) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    labels = []
    if pk_set:
        labels = sorted(str(o) for o in model._base_manager.filter(pk__in=pk_set))
    audit_record(
        action=f"{action_prefix}.{action.removeprefix('post_')}",
        obj=instance,
        data={"items": labels},
    )


@receiver(m2m_changed, sender=User.groups.through)
def _user_groups_changed(sender, instance, action, model, pk_set, **kwargs) -> None:
    if isinstance(instance, User):
        _m2m_audit("user.groups", instance, action, model, pk_set)
    else:  # changed from the group's side
        _m2m_audit("group.users", instance, action, model, pk_set)


@receiver(m2m_changed, sender=User.user_permissions.through)
def _user_permissions_changed(sender, instance, action, model, pk_set, **kwargs) -> None:
    _m2m_audit("user.permissions", instance, action, model, pk_set)


@receiver(m2m_changed, sender=Group.permissions.through)
def _group_permissions_changed(sender, instance, action, model, pk_set, **kwargs) -> None:
    _m2m_audit("group.permissions", instance, action, model, pk_set)


def _object_permission_saved(sender, instance, created: bool, **kwargs) -> None:
    if created:
        _object_permission_event("object_permission.assign", instance)


def _object_permission_deleted(sender, instance, **kwargs) -> None:
    _object_permission_event("object_permission.remove", instance)


def _object_permission_event(action: str, instance) -> None:
    holder = getattr(instance, "user", None) or getattr(instance, "group", None)
    target = instance.content_object
    audit_record(
        action=action,
        obj=target,
        data={"permission": instance.permission.codename, "holder": str(holder), "holder_type": type(holder).__name__},
    )


def connect_object_permission_models() -> None:
    from django.apps import apps
    from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

    for model in apps.get_models():
        if issubclass(model, UserObjectPermissionBase | GroupObjectPermissionBase):
            post_save.connect(_object_permission_saved, sender=model, dispatch_uid=f"audit-{model._meta.label}-save")
            post_delete.connect(_object_permission_deleted, sender=model, dispatch_uid=f"audit-{model._meta.label}-del")


connect_object_permission_models()
