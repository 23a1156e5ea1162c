from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from governance.core.encryption import ROTATION_HOOKS
        from incidents.evidence import evidence_files_rotate

        ROTATION_HOOKS["evidence files"] = evidence_files_rotate
