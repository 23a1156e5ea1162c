from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "governance.sso"
    label = "sso"
    verbose_name = "Single sign-on"
