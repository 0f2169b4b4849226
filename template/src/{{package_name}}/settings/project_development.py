"""The service's own development settings: template updates never change this file.

Imported by settings/development.py after settings/project.py, so a value set
here wins over both the template's and project.py's in development, e.g.
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend". Values
derived from others are computed after this file.
"""
