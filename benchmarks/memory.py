"""Figure 8: memory of a gunicorn worker, idle and under requests, with and without recycling."""

import os
import time
from pathlib import Path

from benchmarks.measure import log, median, wrk
from benchmarks.results import Figure
from benchmarks.stack import Stack, rss_mib, worker_pids

# The wrk script that cycles through the paths in BENCH_PATHS.
ROTATE = Path(__file__).resolve().parent / "rotate.lua"


def run(stack: Stack, requests, connections):
    host = stack.domain
    paths = ",".join(["/health/", "/admin/login/", stack.static_path])
    results = {}
    for name, extra in (("recycling", {}), ("no recycling", {"GUNICORN_MAX_REQUESTS": "0"})):
        process, url = stack.gunicorn(f"memory-{name.replace(' ', '-')}", **extra)
        time.sleep(2)
        idle_pids = worker_pids(process.pid)
        idle = [rss_mib(pid) for pid in idle_pids]
        phases = []
        env = dict(os.environ, BENCH_PATHS=paths)
        for _ in range(2):
            done, errors = 0, 0
            while done < requests:  # wrk runs for a time, not a count: run it in short bursts
                burst = wrk(f"{url}/", host, 2, connections, script=ROTATE, env=env)
                done, errors = done + burst.requests, errors + burst.errors
            time.sleep(1)
            pids = worker_pids(process.pid)
            phases.append(
                {
                    "requests": done,
                    "errors": errors,
                    "rss_mib": [rss_mib(pid) for pid in pids],
                    "recycled_workers": len(set(idle_pids) - set(pids)) if not phases else None,
                    "pids": pids,
                }
            )
        stack.stop(process)
        results[name] = {"idle_rss_mib": idle, "idle_pids": idle_pids, "phases": phases}
        log(
            f"memory ({name}): idle {median(idle):.1f} MiB/worker, after {requests}: "
            f"{median(phases[0]['rss_mib']):.1f}, after {2 * requests}: {median(phases[1]['rss_mib']):.1f}"
        )
    recycling, no_recycling = results["recycling"], results["no recycling"]
    idle = median(recycling["idle_rss_mib"])
    after = median(recycling["phases"][0]["rss_mib"])
    growth = median(no_recycling["phases"][1]["rss_mib"]) - median(no_recycling["phases"][0]["rss_mib"])
    return [
        Figure(
            key="memory",
            title=f"RSS per gunicorn worker, idle and after {requests:,} requests "
            "(/health/, /admin/login/, static in turn)",
            compared_with="—",
            value=f"{idle:.0f} MiB idle, {after:.0f} MiB after (median of workers); "
            f"without recycling +{growth:.1f} MiB over the next {requests:,}",
            ratio=after / idle,
            target="report; no growth beyond `max_requests` recycling",
            samples=results,
        )
    ]
