"""What a log line belongs to: the request or the task being served.

Every log record made while a request is served (by Django) or a task runs
(in a Celery worker) gets these fields from here (servicekit.logs), so that
one request can be followed from the proxy's access log through the view to
the tasks it queued. They live in a context variable: each thread, and each
task, sees its own.
"""

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import Any

from django.utils.functional import empty

from .proxy import client_address

# X-Request-ID: set by the proxy, kept from a client that sent a well-formed
# one (a UUID, a trace id), replaced when it is missing, too long or has
# anything else in it (spaces, control characters, quotes), so that a client
# cannot forge log lines or fill the logs. The Caddyfile uses the same rule.
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

# Where the request's ID and user reach gunicorn's access log
# (servicekit.accesslog): Django's request.META is the WSGI environ that
# gunicorn logs the request with.
ENVIRON_REQUEST_ID = "servicekit.request_id"
ENVIRON_USER_ID = "servicekit.user_id"

_fields: ContextVar[dict[str, Any]] = ContextVar("servicekit_log_context", default={})  # noqa: B039 - never mutated


def valid_request_id(value: str | None) -> str:
    """The request's ID if it is well-formed, else a new one."""
    if value and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return str(uuid.uuid4())


def fields() -> dict[str, Any]:
    """The current request's or task's fields (empty outside both)."""
    return {name: value for name, value in _fields.get().items() if name != "request"}


def request_fields(request) -> dict[str, Any]:
    """The fields of a Django request that RequestIDMiddleware has seen
    (the client's address is worked out only for a line that is logged:
    current_client())."""
    return {
        "request_id": request.META.get(ENVIRON_REQUEST_ID),
        "method": request.method,
        "path": request.path,
        "request": request,
    }


def current_client() -> str | None:
    """The current request's client address (servicekit.proxy)."""
    request = _fields.get().get("request")
    return None if request is None else client_address(request)


def current_user_id() -> str | None:
    """The id of the current request's user, once authentication has looked
    the user up; never a query of its own (an anonymous request stays one)."""
    request = _fields.get().get("request")
    user = getattr(request, "user", None)
    if user is None or getattr(user, "_wrapped", None) is empty:
        return None
    return str(user.pk) if user.is_authenticated else None


def request_id() -> str | None:
    return _fields.get().get("request_id")


def bind(**values: Any) -> Token[dict[str, Any]]:
    """Adds the fields that are not None, until reset(token). A `request`
    field is the Django request, which only current_user_id() reads."""
    return _fields.set({**_fields.get(), **{name: value for name, value in values.items() if value is not None}})


def reset(token: Token[dict[str, Any]]) -> None:
    _fields.reset(token)


@contextlib.contextmanager
def bound(**values: Any) -> Iterator[None]:
    """The fields added for the duration of the block."""
    token = bind(**values)
    try:
        yield
    finally:
        reset(token)


def tag_request_id(event, hint):
    """Sentry's before_send: tags an event with the request's ID."""
    if (current := request_id()) is not None:
        event.setdefault("tags", {})["request_id"] = current
    return event
