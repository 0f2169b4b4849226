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
