"""moto's server over HTTPS, ending each connection as TLS requires: with
a close_notify alert before the socket closes. `moto_server --ssl` runs
Werkzeug's development server, which closes the socket after each
response without one; strict clients, pgBackRest among them, take that
for a truncated response ("unexpected eof while reading") and retry
forever. S3Server(tls=True) runs this instead:

    python -m harness.moto_tls HOST PORT CERTIFICATE KEY
"""

import contextlib
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

# Seconds to wait for the client's own close_notify.
CLOSE_TIMEOUT = 5


class TLSRequestHandler(MotoRequestHandler):
    def finish(self) -> None:
        super().finish()
        # The server closes every connection (Connection: close): say so in TLS.
        with contextlib.suppress(OSError, ValueError):
            self.connection.settimeout(CLOSE_TIMEOUT)
            self.connection.unwrap()


def main() -> None:
    host, port, certificate, key = sys.argv[1:]
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        host,
        int(port),
        app,
        threaded=True,
        request_handler=TLSRequestHandler,
        ssl_context=(certificate, key),
    )
    print(f"moto over HTTPS on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
