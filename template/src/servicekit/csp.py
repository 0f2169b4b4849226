"""Content-Security-Policy keywords, named as Django 6 names them.

SECURE_CSP is written the way Django 6.0 reads its own SECURE_CSP setting: a
dict of directive -> list of sources, with these constants for the quoted
keywords. Moving to Django 6 is then a change of two lines: import CSP from
django.utils.csp instead of here, and list
django.middleware.csp.ContentSecurityPolicyMiddleware in MIDDLEWARE instead
of servicekit.middleware.ContentSecurityPolicyMiddleware. (Django 6's
middleware sends the policy as it is under DEBUG too; set it with
with_inline_code in settings/development.py then, for Django's development
pages.)
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


# Where inline <script> and <style> elements and attributes are allowed or
# not: the -elem and -attr directives, when set, take precedence.
INLINE_CODE_DIRECTIVES = [
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "style-src",
    "style-src-elem",
    "style-src-attr",
]


def with_inline_code(policy):
    """The policy with inline scripts and styles allowed, for development only.

    Django's own development pages (the traceback of an error, the 404 page
    that lists the URL patterns, the welcome page) are written with inline
    <style> and <script> elements and onclick attributes, which a policy
    allowing this site's files only blocks, leaving them unstyled and inert.
    The middleware uses this under DEBUG, which production refuses to start
    with.
    """
    relaxed = dict(policy)
    for directive in INLINE_CODE_DIRECTIVES:
        sources = policy.get(directive)
        if not sources and directive in ("script-src", "style-src"):
            # Unset, these two fall back to default-src.
            sources = policy.get("default-src")
        # Neither set: the policy blocks no inline code there.
        if sources:
            kept = [source for source in sources if source not in (CSP.NONE, CSP.UNSAFE_INLINE)]
            relaxed[directive] = [*kept, CSP.UNSAFE_INLINE]
    return relaxed
