"""Fixtures of the service's own tests.

tests/ belongs to the service, except tests/template/: the template's tests
of what it provides (probes, settings, tasks), which template updates keep up
to date. pytest runs both.
"""
