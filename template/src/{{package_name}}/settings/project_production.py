"""The service's own production settings: template updates never change this file.

Imported by settings/production.py after settings/project.py, so a value set here
wins over both the template's and project.py's in production, e.g.
CONN_MAX_AGE = 600. Values derived from others are computed after this file.
"""
