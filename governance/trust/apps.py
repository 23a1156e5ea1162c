from django.apps import AppConfig


class TrustConfig(AppConfig):
    name = "governance.trust"
    label = "trust"
    verbose_name = "Trust report"
