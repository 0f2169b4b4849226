"""Logging: one format for every process of the service, and the filters
used by the LOGGING setting (settings/base.py).

LOG_FORMAT=json (production's default) writes one JSON object per line, for
a log collector to parse: time (UTC, ISO 8601), level, logger, message, then
the fields of the request or task being served (servicekit.context:
request_id, method, path, client, user_id, task_name, task_id) and any
`extra` the call passed. LOG_FORMAT=text (development's default) writes the
same fields on one readable line. Django, gunicorn (servicekit.accesslog) and
Celery's worker and beat all log through these formatters.
"""

import logging

from django.http import HttpRequest
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from . import context

LOG_FORMATS = ("json", "text")


class ContextFilter(logging.Filter):
    """Adds the current request's or task's fields to every record.

    Django logs a request's error response ("Not Found", "Internal Server
    Error") after the middleware is done, with the request attached to the
    record: its fields come from that request instead.
    """

    def filter(self, record):
        request = getattr(record, "request", None)
        if isinstance(request, HttpRequest) and not context.fields():
            with context.bound(**context.request_fields(request)):
                return self.filter_in_context(record)
        return self.filter_in_context(record)

    @staticmethod
    def filter_in_context(record):
        for name, value in context.fields().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        if not hasattr(record, "client") and (client := context.current_client()) is not None:
            record.client = client
        if not hasattr(record, "user_id") and (user_id := context.current_user_id()) is not None:
            record.user_id = user_id
        if isinstance(getattr(record, "status_code", None), int) and not hasattr(record, "status"):
            record.status = record.status_code
        return True


class JsonFormatter(BaseJsonFormatter):
    def __init__(self, *args, **kwargs):
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            # Django's request objects and its status_code (logged as status).
            reserved_attrs=[*RESERVED_ATTRS, "request", "status_code"],
        )


class TextFormatter(logging.Formatter):
    """`time level logger message`, then the context's fields as name=value."""

    FIELDS = ("request_id", "method", "path", "status", "duration", "client", "user_id", "task_name", "task_id")

    def __init__(self, *args, **kwargs):
        super().__init__("{asctime} {levelname} {name} {message}", style="{")

    def format(self, record):
        line = super().format(record)
        fields = " ".join(f"{name}={getattr(record, name)}" for name in self.FIELDS if hasattr(record, name))
        if not fields:
            return line
        # The traceback, if any, stays below the line it belongs to.
        first, newline, rest = line.partition("\n")
        return f"{first} {fields}{newline}{rest}"


def formatter(log_format):
    return JsonFormatter() if log_format == "json" else TextFormatter()


class OneLineWarning:
    """Logs a record as one WARNING line, without its traceback.

    For errors that are the client's, not the service's: Django logs a
    request with a Host header outside ALLOWED_HOSTS as an ERROR with the
    exception's traceback, so that every scanner that probes the service by
    its IP address fills the log with tracebacks that need no fix. The line
    that remains names the host, which is what an operator needs.
    """

    def filter(self, record):
        if record.levelno > logging.WARNING:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True
