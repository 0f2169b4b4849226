"""The service's own test settings: template updates never change this file.

Imported by settings/test.py after settings/project.py, so a value set here
wins over both the template's and project.py's in test, e.g.
CELERY_TASK_EAGER_PROPAGATES = False. Values derived from others are computed after this file.
"""
