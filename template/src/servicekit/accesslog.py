"""gunicorn's logger, with the client's address in the access log.

Behind the proxy, every request comes from the proxy's address: the access
log's %(h)s would name the proxy for every client. This logger puts the
client's address there instead, read from X-Forwarded-For only when the
peer is one of FORWARDED_ALLOW_IPS (see servicekit.proxy); from any other
peer, the header is the client's own claim and the peer's address is logged.
"""

from gunicorn.glogging import Logger

from .proxy import TrustedProxies


class ClientAddressLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        self.proxies = TrustedProxies(cfg.forwarded_allow_ips)

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["h"] = self.proxies.client(environ.get("REMOTE_ADDR", "-"), environ.get("HTTP_X_FORWARDED_FOR", ""))
        return atoms
