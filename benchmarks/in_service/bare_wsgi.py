"""The floor for the web figures: a WSGI callable that does nothing.

Served by the rendered gunicorn.conf.py (same workers, threads, worker class,
keep-alive, access log, max_requests) in place of the Django application:

    gunicorn --config gunicorn.conf.py bare_wsgi:application
"""

BODY = b'{"status": "ok"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
