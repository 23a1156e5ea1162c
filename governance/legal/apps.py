from django.apps import AppConfig


class LegalConfig(AppConfig):
    name = "governance.legal"
    label = "legal"
    verbose_name = "Legal requests"

    def ready(self) -> None:
        from governance.core.encryption import ROTATION_HOOKS
        from governance.legal.documents import legal_documents_rotate

        ROTATION_HOOKS["legal documents"] = legal_documents_rotate
