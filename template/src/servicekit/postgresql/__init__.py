"""Django's PostgreSQL backend, timing every statement for /metrics.

Production's DATABASES names it as the ENGINE. Each statement (or
executemany batch) run through Django's cursors is observed in
django_db_query_duration_seconds{alias} (servicekit.metrics); its _count is
the number of statements. Django's own health check of a kept connection
(CONN_HEALTH_CHECKS) does not go through those cursors and is not counted.
"""
