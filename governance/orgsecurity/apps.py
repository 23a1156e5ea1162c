from django.apps import AppConfig


class OrgSecurityConfig(AppConfig):
    name = "governance.orgsecurity"
    label = "orgsecurity"
    verbose_name = "Organisation security settings"

    def ready(self) -> None:
        from governance.orgsecurity import receivers  # noqa: F401  (connects signal receivers)
