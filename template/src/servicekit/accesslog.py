"""gunicorn's logger: the service's log format, and the client's address.

Its error log and access log use the formatter of LOG_FORMAT
(servicekit.logs). In JSON, each access line has the request's fields:
request_id and user_id (which Django's RequestIDMiddleware leaves in the
request's environ), method, path, query, status, duration in seconds,
client, bytes sent and user_agent.

Behind the proxy, every request comes from the proxy's address: the client
is read from X-Forwarded-For instead, only when the peer is one of
FORWARDED_ALLOW_IPS (see servicekit.proxy); from any other peer, the header
is the client's own claim and the peer's address is logged.
"""

from gunicorn.glogging import Logger

from .context import ENVIRON_REQUEST_ID, ENVIRON_USER_ID
from .env import env
from .logs import formatter
from .proxy import TrustedProxies


class ClientAddressLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        self.proxies = TrustedProxies(cfg.forwarded_allow_ips)
        self.log_format = env.str("LOG_FORMAT", default="json")
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter(self.log_format))

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["h"] = self.client(environ)
        return atoms

    def client(self, environ):
        return self.proxies.client(environ.get("REMOTE_ADDR", "-"), environ.get("HTTP_X_FORWARDED_FOR", ""))

    def access(self, resp, req, environ, request_time):
        if self.log_format != "json":
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        status = resp.status_code
        path = environ.get("PATH_INFO", "")
        fields = {
            "request_id": environ.get(ENVIRON_REQUEST_ID),
            "method": environ.get("REQUEST_METHOD"),
            "path": path,
            "query": environ.get("QUERY_STRING") or None,
            "status": status,
            "duration": round(request_time.total_seconds(), 6),
            "client": self.client(environ),
            "user_id": environ.get(ENVIRON_USER_ID),
            "bytes": getattr(resp, "sent", None),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        present = {name: value for name, value in fields.items() if value is not None}
        self.access_log.info("%s %s %s", fields["method"], path, status, extra=present)
