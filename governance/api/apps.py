from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "governance.api"
    label = "api"
    verbose_name = "Integration API"

    def ready(self) -> None:
        # Registers the bearer-token scheme with drf-spectacular (schema and system checks).
        from governance.api import schema  # noqa: F401
