from django.apps import AppConfig


class DisclosureConfig(AppConfig):
    name = "governance.disclosure"
    label = "disclosure"
    verbose_name = "Vulnerability disclosure"
