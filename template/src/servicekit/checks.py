"""System checks: a mistake in the service's extension settings is reported by
`manage.py check` (and at start-up), not by the first probe that needs it."""

from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import import_string


@register()
def project_ready_checks(app_configs, **kwargs):
    errors = []
    for name, path in settings.PROJECT_READY_CHECKS.items():
        try:
            check = import_string(path)
        except ImportError as error:
            errors.append(Error(f"PROJECT_READY_CHECKS[{name!r}] cannot be imported: {error}", id="servicekit.E001"))
            continue
        if not callable(check):
            errors.append(Error(f"PROJECT_READY_CHECKS[{name!r}] ({path}) is not callable.", id="servicekit.E002"))
    return errors
