import ipaddress

from django.conf import settings

from . import health

PROBES = {"/health/": health.liveness, "/ready/": health.readiness}


class TrustedProxyMiddleware:
    """Drops X-Forwarded-* headers from peers that are not a trusted proxy.

    SECURE_PROXY_SSL_HEADER and USE_X_FORWARDED_HOST make Django believe these
    headers; only the proxy may set them, or a client could claim HTTPS or
    another host. The proxies are FORWARDED_ALLOW_IPS (addresses or networks,
    or *), the variable that gunicorn reads for the same purpose.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        allowed = settings.FORWARDED_ALLOW_IPS
        self.trust_all = "*" in allowed
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in allowed if entry != "*"]

    def __call__(self, request):
        if not self.trust_all and not self.is_proxy(request.META.get("REMOTE_ADDR", "")):
            for key in [key for key in request.META if key.startswith("HTTP_X_FORWARDED_")]:
                del request.META[key]
        return self.get_response(request)

    def is_proxy(self, address):
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:  # a Unix socket peer has no address
            return False
        return any(peer in network for network in self.networks)


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
