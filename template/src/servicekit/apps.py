from django.apps import AppConfig


class ServiceKitConfig(AppConfig):
    name = "servicekit"
    verbose_name = "Service kit"

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks
        from .metrics import create_directory

        # Before any metric is written, in any process (migrate, a shell).
        create_directory()
