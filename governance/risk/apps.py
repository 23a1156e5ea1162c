from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "governance.risk"
    label = "risk"
    verbose_name = "Risk, changes and continuity"
