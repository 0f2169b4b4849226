"""Figures 18-20: the cost of the service's observability (JSON logs, request
IDs, Prometheus metrics), the rendered service against the same service
without it, side by side in the same run.

On: production settings as rendered (in_service/observability_on.py adds a
one-query view to the URLs), LOG_FORMAT=json, PROMETHEUS_MULTIPROC_DIR a
fresh directory in memory (under /dev/shm), as the image's is (its /tmp is
a tmpfs in the production stack). Off: in_service/observability_off.py (no
request metrics, no database or cache metrics, no RequestIDMiddleware),
LOG_FORMAT=text, no PROMETHEUS_MULTIPROC_DIR. Both under the rendered
gunicorn.conf.py, whose access log writes one line per request on either
side, to a file (the harness sends a process's output to its log file).
"""

import os
import tempfile
import time
from statistics import mean

from benchmarks.measure import alternate, log, median, summary, wrk
from benchmarks.memory import ROTATE
from benchmarks.results import Figure, bounded
from benchmarks.stack import Stack, cpu_seconds, smaps_mib, worker_pids
from harness.service import http_get

ONE_QUERY = "/bench/one-query/"  # in_service/observability_urls.py
MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
IN_MEMORY = "/dev/shm"


def start(stack: Stack, side, name, in_memory):
    """gunicorn with observability on or off; returns (process, base URL).
    in_memory: the directory on a tmpfs for the metrics directories."""
    common = {"BENCH_PACKAGE": stack.package, "DJANGO_SETTINGS_MODULE": f"observability_{side}"}
    if side == "on":
        metrics = f"{in_memory}/{name}"  # gunicorn.conf.py's on_starting empties and creates it
        return stack.gunicorn(name, LOG_FORMAT="json", **{MULTIPROC: metrics}, **common)
    return stack.gunicorn(name, LOG_FORMAT="text", unset=[MULTIPROC], **common)


def check(stack: Stack, on, off):
    """Each side is what it claims: on has request IDs and counts requests and
    queries across workers; off has neither."""
    host = stack.domain
    proxied = {"host": host}
    for url in (on, off):
        status, _, _ = http_get(f"{url}{ONE_QUERY}", **proxied)
        assert status in (200, 301), f"{url}{ONE_QUERY}: {status}"
    # The probe answers before the HTTPS redirect, after RequestIDMiddleware.
    _, on_headers, _ = http_get(f"{on}/health/", host=host)
    _, off_headers, _ = http_get(f"{off}/health/", host=host)
    assert "X-Request-ID" in on_headers, on_headers
    assert "X-Request-ID" not in off_headers, off_headers
    wrk(f"{on}{ONE_QUERY}", host, 1, 4)
    wrk(f"{off}{ONE_QUERY}", host, 1, 4)
    _, _, on_metrics = http_get(f"{on}/metrics")
    _, _, off_metrics = http_get(f"{off}/metrics")
    for metric in (b"django_http_request_duration_seconds_count{", b"django_db_query_duration_seconds_count{"):
        assert metric in on_metrics, f"{metric!r} not on {on}/metrics"
        assert metric not in off_metrics, f"{metric!r} on {off}/metrics"


def throughput(stack: Stack, in_memory, rounds, seconds, connections):
    host = stack.domain
    on_process, on = start(stack, "on", "observability-on", in_memory)
    off_process, off = start(stack, "off", "observability-off", in_memory)
    check(stack, on, off)
    for url in (on, off):
        for path in ("/health/", ONE_QUERY):
            wrk(f"{url}{path}", host, 1, connections)  # warm-up
    cpu_us = {}  # name: CPU time of the gunicorn per request, µs, for each run

    def measured(name, process, url):
        """A wrk run, and the CPU its gunicorn used per request served: less
        sensitive than requests/s to what else this machine runs."""

        def run():
            before = cpu_seconds(process.pid)
            result = wrk(url, host, seconds, connections)
            cpu_us.setdefault(name, []).append((cpu_seconds(process.pid) - before) / result.requests * 1e6)
            return result

        return run

    log(f"observability: {rounds} rounds of {seconds} s per point, {connections} connections, on / off")
    runs = alternate(
        rounds,
        health_on=measured("health_on", on_process, f"{on}/health/"),
        health_off=measured("health_off", off_process, f"{off}/health/"),
        query_on=measured("query_on", on_process, f"{on}{ONE_QUERY}"),
        query_off=measured("query_off", off_process, f"{off}{ONE_QUERY}"),
    )
    logs = {"on": on_process.log_path.stat().st_size, "off": off_process.log_path.stat().st_size}
    stack.stop(on_process)
    stack.stop(off_process)
    rps = {name: summary(values, "rps") for name, values in runs.items()}
    cpu = {name: median(values) for name, values in cpu_us.items()}
    for name in ("health", "query"):
        on_rps, off_rps = rps[f"{name}_on"], rps[f"{name}_off"]
        on_cpu, off_cpu = cpu[f"{name}_on"], cpu[f"{name}_off"]
        log(
            f"observability: {name}: on {on_rps:.0f} req/s, off {off_rps:.0f} ({on_rps / off_rps:.2f}×); "
            f"CPU per request {on_cpu:.0f} µs vs {off_cpu:.0f} µs"
        )
    errors = {name: sum(run.errors for run in values) for name, values in runs.items()}
    samples = {"runs": runs, "cpu_us_per_request": cpu_us, "errors": errors, "log_bytes": logs}
    return rps, cpu, samples


def memory(stack: Stack, in_memory, rounds, requests, connections):
    """Per worker, after the same requests on each side (rotating over
    /health/, the one-query view, the admin's login page and a static file):
    a fresh pair of gunicorns per round."""
    host = stack.domain
    env = dict(os.environ, BENCH_PATHS=",".join(["/health/", ONE_QUERY, "/admin/login/", stack.static_path]))
    samples = {"on": [], "off": []}
    for round_ in range(rounds):
        started = {
            side: start(stack, side, f"observability-memory-{side}-{round_}", in_memory) for side in ("on", "off")
        }
        done = dict.fromkeys(started, 0)
        errors = dict.fromkeys(started, 0)
        while min(done.values()) < requests:  # short bursts, alternately, until both have had `requests`
            for side, (_, url) in started.items():
                if done[side] < requests:
                    burst = wrk(f"{url}/", host, 2, connections, script=ROTATE, env=env)
                    done[side] += burst.requests
                    errors[side] += burst.errors
        time.sleep(1)
        for side, (process, _) in started.items():
            workers = {pid: smaps_mib(pid) for pid in worker_pids(process.pid)}
            samples[side].append({"requests": done[side], "errors": errors[side], "workers": workers})
            stack.stop(process)
    # Within one gunicorn, workers come in two sizes about 7 MiB apart (USS),
    # in a proportion that varies from start to start: the median of the
    # workers would jump between them. Each start counts as its workers'
    # mean, and the figure is the median of the starts.
    per_worker = {
        side: {
            kind: median([mean(worker[kind] for worker in r["workers"].values()) for r in rounds_])
            for kind in ("rss", "pss", "uss")
        }
        for side, rounds_ in samples.items()
    }
    for side, values in per_worker.items():
        log(
            f"observability: memory ({side}): RSS {values['rss']:.1f}, PSS {values['pss']:.1f}, "
            f"USS {values['uss']:.1f} MiB per worker"
        )
    return per_worker, samples


def run(stack: Stack, rounds, seconds, connections, requests):
    memory_rounds = max(3, rounds)
    with tempfile.TemporaryDirectory(prefix="observability-", dir=IN_MEMORY) as in_memory:
        rps, cpu, samples = throughput(stack, in_memory, rounds, seconds, connections)
        per_worker, memory_samples = memory(stack, in_memory, memory_rounds, requests, connections)
    workers = 2 * stack.available_cpus() + 1
    on, off = per_worker["on"], per_worker["off"]
    return [
        Figure(
            key="observability-health",
            title="`/health/` requests/s with observability (JSON logs, request IDs, Prometheus multiprocess)",
            compared_with="the same service without it (`LOG_FORMAT=text`, no request, query or cache metrics, "
            "no request IDs, no metrics directory)",
            value=f"{rps['health_on']:.0f} vs {rps['health_off']:.0f} req/s; gunicorn's CPU per request "
            f"{cpu['health_on']:.0f} vs {cpu['health_off']:.0f} µs ({cpu['health_off'] / cpu['health_on']:.2f}×)",
            **bounded(rps["health_on"] / rps["health_off"], at_least=0.9),
            samples=samples,
        ),
        Figure(
            key="observability-query",
            title="requests/s of a view making one ORM query (PostgreSQL), with observability",
            compared_with="the same without observability",
            value=f"{rps['query_on']:.0f} vs {rps['query_off']:.0f} req/s; gunicorn's CPU per request "
            f"{cpu['query_on']:.0f} vs {cpu['query_off']:.0f} µs ({cpu['query_off'] / cpu['query_on']:.2f}×)",
            **bounded(rps["query_on"] / rps["query_off"], at_least=0.9),
        ),
        Figure(
            key="observability-memory",
            title=f"memory per gunicorn worker with observability, after {requests:,} requests "
            f"(/health/, the one-query view, /admin/login/, static in turn; {workers} workers, "
            f"mean of the workers, median of {memory_rounds} fresh starts)",
            compared_with="the same without observability, same requests",
            value=f"RSS {on['rss']:.1f} vs {off['rss']:.1f} MiB ({on['rss'] - off['rss']:+.1f}); "
            f"PSS {on['pss']:.1f} vs {off['pss']:.1f} ({on['pss'] - off['pss']:+.1f}); "
            f"USS {on['uss']:.1f} vs {off['uss']:.1f} ({on['uss'] - off['uss']:+.1f})",
            ratio=on["uss"] / off["uss"],
            target="report the difference",
            samples={"per_worker_mib": per_worker, "rounds": memory_samples},
        ),
    ]
