from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "governance.access"
    label = "access"
    verbose_name = "Access and roles"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from governance.access.roles import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="access-sync-roles")
