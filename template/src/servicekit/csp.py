"""Content-Security-Policy keywords, named as Django 6 names them.

SECURE_CSP is written the way Django 6.0 reads its own SECURE_CSP setting: a
dict of directive -> list of sources, with these constants for the quoted
keywords. Moving to Django 6 is then a change of two lines: import CSP from
django.utils.csp instead of here, and list
django.middleware.csp.ContentSecurityPolicyMiddleware in MIDDLEWARE instead
of servicekit.middleware.ContentSecurityPolicyMiddleware.
"""

from enum import StrEnum


class CSP(StrEnum):
    """Source keywords of a Content-Security-Policy directive."""

    NONE = "'none'"
    SELF = "'self'"
    REPORT_SAMPLE = "'report-sample'"
    STRICT_DYNAMIC = "'strict-dynamic'"
    UNSAFE_EVAL = "'unsafe-eval'"
    UNSAFE_HASHES = "'unsafe-hashes'"
    UNSAFE_INLINE = "'unsafe-inline'"
    WASM_UNSAFE_EVAL = "'wasm-unsafe-eval'"


def header_value(policy):
    """The header for a policy: directives separated by "; ", sources by spaces.

    A directive's value is a list of sources, or one string (report-uri), or
    True for a directive without sources (upgrade-insecure-requests); a
    directive whose value is empty or False is left out.
    """
    directives = []
    for directive, value in policy.items():
        if value is True:
            directives.append(directive)
        elif isinstance(value, str):
            directives.append(f"{directive} {value}")
        elif value:
            directives.append(f"{directive} {' '.join(str(source) for source in value)}")
    return "; ".join(directives)
