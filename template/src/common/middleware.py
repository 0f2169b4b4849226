from django.conf import settings

from . import health

PROBES = {"/health/": health.liveness, "/ready/": health.readiness}


class ProbeMiddleware:
    """Answers the liveness and readiness probes before any other middleware.

    An orchestrator probes over plain HTTP with its own Host header
    (localhost, a pod IP), which the HTTPS redirect and ALLOWED_HOSTS would
    refuse; and a probe needs no session, CSRF or authentication work.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Sends settings.CONTENT_SECURITY_POLICY (directive -> sources) on every
    response that does not set its own."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.header = "; ".join(
            f"{directive} {' '.join(sources)}" for directive, sources in settings.CONTENT_SECURITY_POLICY.items()
        )

    def __call__(self, request):
        response = self.get_response(request)
        if self.header:
            response.headers.setdefault("Content-Security-Policy", self.header)
        return response
