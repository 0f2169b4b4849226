"""A rejected answer ends copier with its message, not with a traceback.

copier asks again when an interactive answer fails its validator. An answer
given with ``--data``, ``--data-file`` or ``--defaults`` is checked before
anything is written, but copier's command line lets that ValueError escape,
so Python prints a traceback whose last line is the message. This extension
installs an exception hook that prints only the message (naming the
question) and leaves every other uncaught exception to the hook before it.
It acts only at the top level of a process, so copier's interactive prompts,
``copier update`` and copier used as a library behave exactly as before.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from jinja2.ext import Extension

COPIER_PACKAGE = "copier"


def rejected_question(error: BaseException, tb) -> str | None:
    """The question whose answer raised ``error`` in copier's questionnaire, if any."""
    if not isinstance(error, ValueError):
        return None
    for frame, _ in traceback.walk_tb(tb):
        code = frame.f_code
        # Worker._ask parses and validates the answers given up front; any
        # ValueError that leaves it is about the answer it was checking.
        if code.co_name == "_ask" and Path(code.co_filename).parent.name == COPIER_PACKAGE:
            return frame.f_locals.get("var_name")
    return None


def answer_error_hook(previous):
    def hook(error_type, error, tb):
        question = rejected_question(error, tb)
        if question is None:
            previous(error_type, error, tb)
            return
        message = str(error)
        if message == f'Question "{question}" is required':
            # --defaults with a question that has no default (or none that
            # could be derived from the other answers): say how to answer it.
            message += f": give it with --data {question}=..., or run without --defaults to be asked."
        elif question not in message:
            message = f"Invalid answer for question '{question}': {message}"
        print(message, file=sys.stderr)

    hook.answer_error_hook = True
    return hook


class AnswerErrors(Extension):
    """Installs the hook once per process when copier loads the template."""

    def __init__(self, environment):
        super().__init__(environment)
        if not getattr(sys.excepthook, "answer_error_hook", False):
            sys.excepthook = answer_error_hook(sys.excepthook)
