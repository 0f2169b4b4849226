"""Which peers are trusted proxies, and who the client behind them is.

FORWARDED_ALLOW_IPS lists the proxies (addresses or networks, or * for
every peer). Django (TrustedProxyMiddleware, the login throttle) and
gunicorn's access log read it through this module, so that both agree on
which X-Forwarded-For to believe.
"""

import functools
import ipaddress

from django.conf import settings


class TrustedProxies:
    """The proxies of FORWARDED_ALLOW_IPS: a list of entries, or one comma-separated string."""

    def __init__(self, allowed):
        if isinstance(allowed, str):
            allowed = allowed.split(",")
        entries = [entry.strip() for entry in allowed if entry.strip()]
        self.trust_all = "*" in entries
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in entries if entry != "*"]

    def is_proxy(self, address):
        if self.trust_all:
            return True
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:  # a Unix socket peer has no address
            return False
        return any(peer in network for network in self.networks)

    def client(self, peer, forwarded_for):
        """The client's address: the peer's own, unless the peer is a proxy.

        Each proxy appends the address it received the request from to
        X-Forwarded-For, so the list is read from the right: the first
        address that is not a trusted proxy is the client. Anything to its
        left was written by the client and proves nothing. A malformed entry
        ends the walk at the last address a trusted proxy vouched for.
        """
        address = peer
        if not forwarded_for or not self.is_proxy(peer):
            return address
        for entry in reversed(forwarded_for.split(",")):
            try:
                address = str(ipaddress.ip_address(entry.strip()))
            except ValueError:
                break
            if not self.is_proxy(address):
                break
        return address


def client_address(request):
    """The address of the client that sent a Django request (django-axes'
    AXES_CLIENT_IP_CALLABLE): X-Forwarded-For is only believed from
    FORWARDED_ALLOW_IPS."""
    allowed = settings.FORWARDED_ALLOW_IPS
    proxies = trusted_proxies(allowed if isinstance(allowed, str) else tuple(allowed))
    return proxies.client(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", ""))


@functools.lru_cache(maxsize=8)
def trusted_proxies(allowed):
    # Parsed once per value of the setting, not on every request.
    return TrustedProxies(allowed)
