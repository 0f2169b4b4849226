"""What a test does when a tool it needs is missing: on a developer machine
it is skipped with the reason; under CI (CI=true) that is a broken build,
and it fails instead."""

import os
from typing import NoReturn

import pytest


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the current test, or fail it on CI, where every tool must be available."""
    # Read now, not at import: a test of this policy sets CI itself.
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (not skipped because CI=true)", pytrace=False)
    pytest.skip(reason)


def require(condition, reason: str) -> None:
    """skip_or_fail(reason) unless condition holds."""
    if not condition:
        skip_or_fail(reason)
