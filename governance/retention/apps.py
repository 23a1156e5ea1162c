from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "governance.retention"
    label = "retention"
    verbose_name = "Retention and backups"
