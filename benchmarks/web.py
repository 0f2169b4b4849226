"""Figures 3-5: `/health/` against a bare WSGI callable, `/ready/` latency, a static file."""

from benchmarks.measure import alternate, log, summary, wrk
from benchmarks.results import Figure, bounded
from benchmarks.stack import Stack

LIGHT = 4  # a few clients at once: latency without queueing behind a saturated CPU
GZIP = ["Accept-Encoding: gzip, deflate, br"]  # as every browser sends


def run(stack: Stack, rounds, seconds, connections):
    log("web: starting gunicorn with the rendered config, for the service and for a bare WSGI callable")
    service = stack.default_url()
    _, bare = stack.gunicorn("bare", app="bare_wsgi:application")
    # Diagnostic: the same config without worker recycling (GUNICORN_MAX_REQUESTS=0).
    _, norecycle = stack.gunicorn("no-recycling", GUNICORN_MAX_REQUESTS="0")
    host = stack.domain
    for url in (
        f"{service}/health/",
        f"{service}/ready/",
        f"{service}{stack.static_path}",
        f"{bare}/",
        f"{norecycle}/health/",
    ):
        wrk(url, host, 1, connections)  # warm-up
    log(f"web: {rounds} rounds of {seconds} s per point, {connections} connections (latency: {LIGHT})")
    runs = alternate(
        rounds,
        health=lambda: wrk(f"{service}/health/", host, seconds, connections),
        bare=lambda: wrk(f"{bare}/", host, seconds, connections),
        static=lambda: wrk(f"{service}{stack.static_path}", host, seconds, connections, headers=GZIP),
        static_identity=lambda: wrk(f"{service}{stack.static_path}", host, seconds, connections),
        health_no_recycling=lambda: wrk(f"{norecycle}/health/", host, seconds, connections),
        ready_loaded=lambda: wrk(f"{service}/ready/", host, seconds, connections),
        health_light=lambda: wrk(f"{service}/health/", host, seconds, LIGHT),
        ready_light=lambda: wrk(f"{service}/ready/", host, seconds, LIGHT),
    )
    health, bare_rps, static, static_identity, norecycle_rps = (
        summary(runs[name], "rps") for name in ("health", "bare", "static", "static_identity", "health_no_recycling")
    )
    ready_p50, ready_p99 = summary(runs["ready_light"], "p50_ms"), summary(runs["ready_light"], "p99_ms")
    health_p50, health_p99 = summary(runs["health_light"], "p50_ms"), summary(runs["health_light"], "p99_ms")
    loaded = {key: summary(runs["ready_loaded"], key) for key in ("rps", "p50_ms", "p99_ms")}
    # Every wrk run of the group, with the errors it counted, goes with the first figure.
    samples = {"runs": runs, "errors": {name: sum(run.errors for run in values) for name, values in runs.items()}}
    return [
        Figure(
            key="health",
            title=f"`/health/` requests/s, rendered `gunicorn.conf.py` "
            f"({2 * stack.available_cpus() + 1} workers × 2 threads)",
            compared_with="a bare WSGI callable under the same gunicorn settings",
            value=f"{health:.0f} vs {bare_rps:.0f} req/s (without worker recycling: {norecycle_rps:.0f}, "
            f"{norecycle_rps / bare_rps:.2f}×)",
            **bounded(health / bare_rps, at_least=0.5),
            samples=samples,
        ),
        Figure(
            key="ready",
            title=f"`/ready/` p50 / p99 latency ({LIGHT} connections; PostgreSQL, Redis cache and broker)",
            compared_with="`/health/` p50 / p99, same load",
            value=f"{ready_p50:.1f} / {ready_p99:.1f} ms vs {health_p50:.1f} / {health_p99:.1f} ms "
            f"(at {connections} connections: {loaded['p50_ms']:.0f} / {loaded['p99_ms']:.0f} ms, "
            f"{loaded['rps']:.0f} req/s)",
            ratio=ready_p99 / health_p99,
            target="p99 ≤ 20 ms",
            met=ready_p99 <= 20,
            samples={"loaded": loaded},
        ),
        Figure(
            key="static",
            title="hashed static file (`admin/css/base.css`, gzip accepted) by WhiteNoise, requests/s",
            compared_with="`/health/` requests/s",
            value=f"{static:.0f} vs {health:.0f} req/s (uncompressed: {static_identity:.0f})",
            **bounded(static / health, at_least=1),
        ),
    ]
