"""Logging filters used by the LOGGING setting (settings/base.py)."""

import logging


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
