"""Measuring on a shared, noisy machine: every comparison is a ratio of two
things measured side by side in the same run, alternating A B A B ..., and
every figure is a median."""

import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def median(values):
    return statistics.median(values) if values else None


def alternate(rounds, **runs):
    """Runs each callable once per round, in the given order, `rounds` times: A B A B ...

    Returns {name: [results]}.
    """
    results = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(run())
    return results


def timed(command, cwd=None, env=None):
    """Runs a command; returns the seconds it took."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return elapsed


# --------------------------------------------------------------------------
# wrk, the HTTP load generator of the web figures
# --------------------------------------------------------------------------

WRK_THREADS = 2
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass
class WrkRun:
    rps: float
    requests: int
    p50_ms: float | None
    p99_ms: float | None
    errors: int  # non-2xx/3xx responses and socket errors


def wrk_problem():
    """Why the web figures cannot be measured here, or None."""
    if shutil.which("wrk") is None:
        return "wrk is not installed (`apt-get install wrk` on Debian/Ubuntu, `brew install wrk` on macOS)"
    return None


def wrk(url, host, seconds, connections, script=None, env=None, timeout_s=10, headers=()):
    """One wrk run, as a client behind the trusted proxy sends it (HTTPS forwarded)."""
    command = [
        "wrk", f"-t{min(WRK_THREADS, connections)}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s",
        "--latency", "-H", f"Host: {host}", "-H", "X-Forwarded-Proto: https",
    ]  # fmt: skip
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", str(script)]
    result = subprocess.run([*command, url], capture_output=True, text=True, env=env, timeout=seconds + 120)
    out = result.stdout
    if result.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed: {out}\n{result.stderr}")

    def latency(percent):
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        return float(match.group(1)) * UNITS[match.group(2)] if match else None

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkRun(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        requests=int(re.search(r"(\d+) requests in", out).group(1)),
        p50_ms=latency(50),
        p99_ms=latency(99),
        errors=(int(non2xx.group(1)) if non2xx else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    )


def summary(runs, key):
    """The median of one measurement over wrk runs."""
    return median([getattr(run, key) for run in runs])
