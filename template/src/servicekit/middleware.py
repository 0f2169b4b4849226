from django.conf import settings
from django.http import HttpResponse

from . import context, health, metrics
from .csp import header_value, with_inline_code
from .proxy import TrustedProxies

PROBES = {"/health/": health.liveness, "/ready/": health.readiness, "/metrics": metrics.view}
# For the stack, the orchestrator and Prometheus only: they tell anyone which
# dependency is down and how busy the service is. The bundled proxy refuses
# them; a request that a trusted proxy or load balancer relayed (it has
# X-Forwarded-For) gets 404 here too, whatever the proxy in front lets
# through (an Ingress routes every path).
INTERNAL_PROBES = {"/ready/", "/metrics"}


class RequestIDMiddleware:
    """Gives every request an ID, and its log lines the request's fields.

    The ID is the X-Request-ID header that the proxy sets (or a client's own
    well-formed one), else a new one (servicekit.context). It is in the
    response's X-Request-ID header, in every log line made while the request
    is served, in gunicorn's access line, and in the headers of the tasks
    the request sends, whose log lines carry it too (servicekit.taskevents).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = context.valid_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        request.META[context.ENVIRON_REQUEST_ID] = request_id
        token = context.bind(**context.request_fields(request))
        try:
            response = self.get_response(request)
        finally:
            if (user_id := context.current_user_id()) is not None:
                request.META[context.ENVIRON_USER_ID] = user_id
            context.reset(token)
        response[context.REQUEST_ID_HEADER] = request_id
        return response


class TrustedProxyMiddleware:
    """Drops X-Forwarded-* headers from peers that are not a trusted proxy.

    SECURE_PROXY_SSL_HEADER and USE_X_FORWARDED_HOST make Django believe these
    headers; only the proxy may set them, or a client could claim HTTPS or
    another host. The proxies are FORWARDED_ALLOW_IPS (addresses or networks,
    or *), the variable that gunicorn reads for the same purpose.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.proxies = TrustedProxies(settings.FORWARDED_ALLOW_IPS)

    def __call__(self, request):
        if not self.proxies.is_proxy(request.META.get("REMOTE_ADDR", "")):
            for key in [key for key in request.META if key.startswith("HTTP_X_FORWARDED_")]:
                del request.META[key]
        return self.get_response(request)


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
            if request.path_info in INTERNAL_PROBES and "HTTP_X_FORWARDED_FOR" in request.META:
                return HttpResponse(status=404)
            return probe(request)
        return self.get_response(request)


class RequestBodyLimitMiddleware:
    """Refuses a request whose announced body is over
    settings.REQUEST_BODY_MAX_BYTES with 413, before a byte of it is read.

    The proxy in front enforces the same limit (and reads bodies of unknown
    length up to it); this is the bound when a request reaches gunicorn some
    other way. Within it, Django's own limits apply: form fields in memory up
    to DATA_UPLOAD_MAX_MEMORY_SIZE, uploaded files in memory up to
    FILE_UPLOAD_MAX_MEMORY_SIZE, then in a temporary file.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.limit = settings.REQUEST_BODY_MAX_BYTES

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > self.limit:
            return HttpResponse(
                f"Request body too large: at most {self.limit} bytes.\n", status=413, content_type="text/plain"
            )
        return self.get_response(request)


class DefaultHeadersMiddleware:
    """Adds self.headers to every response that does not set its own (an
    empty value adds nothing)."""

    headers: dict[str, str] = {}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        for header, value in self.headers.items():
            if value:
                response.headers.setdefault(header, value)
        return response


class ContentSecurityPolicyMiddleware(DefaultHeadersMiddleware):
    """Sends settings.SECURE_CSP as Content-Security-Policy, and
    settings.SECURE_CSP_REPORT_ONLY as Content-Security-Policy-Report-Only,
    on every response that does not set its own: what Django 6's
    django.middleware.csp.ContentSecurityPolicyMiddleware does with the same
    settings (see servicekit.csp).

    Under DEBUG both policies also allow inline scripts and styles, which
    Django's development pages need (servicekit.csp.with_inline_code).
    """

    def __init__(self, get_response):
        super().__init__(get_response)
        policies = {
            "Content-Security-Policy": getattr(settings, "SECURE_CSP", {}),
            "Content-Security-Policy-Report-Only": getattr(settings, "SECURE_CSP_REPORT_ONLY", {}),
        }
        if settings.DEBUG:
            policies = {header: with_inline_code(policy) for header, policy in policies.items()}
        self.headers = {header: header_value(policy) for header, policy in policies.items()}


class PermissionsPolicyMiddleware(DefaultHeadersMiddleware):
    """Sends settings.SECURE_PERMISSIONS_POLICY as Permissions-Policy and
    Cross-Origin-Resource-Policy: same-origin on every response that does not
    set its own.

    The Permissions-Policy denies the browser features a page of this service
    has no use for (camera, microphone, location, payments...), so that an
    injected script or a framed page cannot ask for them either. Cross-Origin-
    Resource-Policy stops other sites from embedding this service's responses
    (images, scripts, JSON) in their pages.
    """

    def __init__(self, get_response):
        super().__init__(get_response)
        self.headers = {
            "Permissions-Policy": permissions_policy(getattr(settings, "SECURE_PERMISSIONS_POLICY", {})),
            "Cross-Origin-Resource-Policy": "same-origin",
        }


def permissions_policy(policy):
    """The header for a dict of feature -> allowed origins: an empty list
    denies the feature everywhere, "self" allows this site, other origins are
    written as URLs (https://maps.example.org)."""
    features = []
    for feature, origins in policy.items():
        allowed = [origin if origin in ("self", "*") else f'"{origin}"' for origin in origins]
        features.append(f"{feature}=({' '.join(allowed)})")
    return ", ".join(features)
