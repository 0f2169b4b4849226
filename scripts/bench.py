#!/usr/bin/env python3
"""Benchmark the template and the service it renders: python3 scripts/bench.py

Needs what scripts/test.py needs (Python 3.11+, git; Python 3.13 for the
rendered service), plus the `wrk` HTTP load generator for the web figures
(Debian/Ubuntu: `apt-get install wrk`; macOS: `brew install wrk`) and a
Docker engine with Compose v2 for the image and stack figures (as the
container tests; .ci/install-docker.sh sets one up). A group whose tool is
missing is left out, saying why. Creates .venv like scripts/test.py, then
writes benchmarks/results.md and benchmarks/results.json.

The machine is assumed to be shared and noisy: every comparison is a ratio of
two things measured side by side in the same run, alternating A B A B ...,
and every figure is a median. Benchmarks print; they never fail on a timing.

    python3 scripts/bench.py                 # everything (about 15 minutes on 2 cores)
    python3 scripts/bench.py --only copier   # some groups: copier, web, sweep, memory, celery, docker
    python3 scripts/bench.py --rounds 3      # fewer alternations (faster, noisier)
"""

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
# The test suite's helpers: servers, the service's venv, the Docker engine.
sys.path.insert(0, str(ROOT / "tests"))

from template_repo import TemplateRepo, git  # noqa: E402 - from the path above

GROUPS = ["copier", "web", "sweep", "memory", "celery", "docker"]


def load_test_runner():
    """scripts/test.py, which knows how to make .venv (imported by path: `test` is a stdlib package)."""
    spec = importlib.util.spec_from_file_location("template_test_runner", ROOT / "scripts" / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reexec_in_venv():
    runner = load_test_runner()
    if Path(sys.prefix).resolve() == runner.VENV.resolve():
        return
    runner.ensure_venv()
    python = str(runner.BIN / "python")
    os.execv(python, [python, str(Path(__file__).resolve()), *sys.argv[1:]])


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------


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
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return elapsed


# --------------------------------------------------------------------------
# Figures 1-2: copier copy and copier update
# --------------------------------------------------------------------------

# The commits of the benchmark's throwaway repositories need an author; one
# the user has set (GIT_AUTHOR_NAME ...) is kept.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.org",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.org",
}


def template_repo(path):
    """The template as it is now in a git repo of its own, tagged v1.0.0, then a
    template-only change (one comment in gunicorn.conf.py) tagged v1.1.0."""
    repo = TemplateRepo(path)
    conf = path / "template" / "gunicorn.conf.py.jinja"
    conf.write_text(conf.read_text() + "\n# A template-only change released in v1.1.0.\n")
    repo.release("1.1.0", "A template-only change")
    return path


def floor_repo(path):
    """copier's floor: a one-question, one-file template (plus the answers file that
    `copier update` needs), tagged like the real one, with a one-line change in v1.1.0."""
    path.mkdir()
    (path / "copier.yml").write_text("project_name:\n  type: str\n")
    (path / "README.md.jinja").write_text("# {{ project_name }}\n")
    (path / "{{_copier_conf.answers_file}}.jinja").write_text("{{ _copier_answers|to_nice_yaml -}}\n")
    git("init", "--quiet", "--initial-branch=main", cwd=path)
    release(path, "1.0.0")
    (path / "README.md.jinja").write_text("# {{ project_name }}\n\nA change released in v1.1.0.\n")
    release(path, "1.1.0")
    return path


def release(path, version):
    git("add", "--all", cwd=path)
    git("commit", "--quiet", "-m", version, cwd=path)
    git("tag", f"v{version}", cwd=path)


def bench_copier(work, rounds, answers):
    copier = str(Path(sys.executable).parent / "copier")
    data = [arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")]
    template = template_repo(work / "template")
    floor = floor_repo(work / "floor")
    counter = iter(range(10**6))

    def copier_copy(source, ref, answers, destination):
        """`copier copy` as a user runs it; returns the seconds it took."""
        command = [copier, "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", ref, *answers]
        return timed([*command, str(source), str(destination)], cwd=work)

    def copy(source, ref, answers):
        return lambda: copier_copy(source, ref, answers, work / f"copy-{next(counter)}")

    def rendered_at_v1(source, name, answers):
        """A service rendered at v1.0.0 and committed; copied once per update, outside the timing."""
        base = work / name
        copier_copy(source, "v1.0.0", answers, base)
        git("init", "--quiet", "--initial-branch=main", cwd=base)
        git("add", "--all", cwd=base)
        git("commit", "--quiet", "-m", "v1", cwd=base)
        return base

    bases = {
        "template": rendered_at_v1(template, "service-v1.0.0", data),
        "floor": rendered_at_v1(floor, "floor-v1.0.0", ["--data", "project_name=Floor"]),
    }
    checked = {"template": [], "floor": []}

    def update(which):
        def run():
            service = work / f"update-{next(counter)}"
            shutil.copytree(bases[which], service, symlinks=True)
            elapsed = timed(
                [copier, "update", "--trust", "--defaults", "--quiet", "--conflict", "inline", "--vcs-ref", "v1.1.0"],
                cwd=service,
            )
            checked[which].append(sorted(line[3:] for line in git("status", "--porcelain", cwd=service).splitlines()))
            return elapsed

        return run

    log(f"copier: {rounds} rounds of floor copy / template copy / template update / floor update")
    runs = alternate(
        rounds,
        floor=copy(floor, "v1.1.0", ["--data", "project_name=Floor"]),
        copy=copy(template, "v1.1.0", data),
        update=update("template"),
        floor_update=update("floor"),
    )
    floor_s, copy_s, update_s, floor_update_s = (
        median(runs[name]) for name in ("floor", "copy", "update", "floor_update")
    )
    expected = [".copier-answers.yml", "gunicorn.conf.py"]
    return {
        "copy": {
            "figure": "`copier copy --defaults` of the template",
            "compared_with": "`copier copy` of a one-file template (copier's floor)",
            "value": f"{copy_s:.2f} s vs {floor_s:.2f} s",
            "ratio": copy_s / floor_s,
            "target": "≤ 1.5×",
            "met": copy_s / floor_s <= 1.5,
            "samples": {"template_s": runs["copy"], "floor_s": runs["floor"]},
        },
        "update": {
            "figure": "`copier update` across one version, no conflicts",
            "compared_with": "the template's `copier copy`",
            "value": f"{update_s:.2f} s vs {copy_s:.2f} s (copier's floor: its update is "
            f"{floor_update_s / floor_s:.2f}× its copy)",
            "ratio": update_s / copy_s,
            "target": "≤ 2×",
            "met": update_s / copy_s <= 2.0,
            "samples": {
                "update_s": runs["update"],
                "copy_s": runs["copy"],
                "floor_update_s": runs["floor_update"],
                "floor_copy_s": runs["floor"],
            },
            "floor_ratio": floor_update_s / floor_s,
            "changed_files": checked["template"][0] if checked["template"] else None,
            "clean": all(changed == expected for changed in checked["template"]),
        },
    }


# --------------------------------------------------------------------------
# The rendered service, for real
# --------------------------------------------------------------------------


class Stack:
    """A rendered default service with its venv, on real PostgreSQL and Redis."""

    def __init__(self, work, answers):
        from copier import run_copy
        from servers import PostgresServer, RedisServer
        from service_env import Service, service_venv

        self.work = work
        self.answers = answers
        self.package = "obc_management_system"
        self.domain = answers["domain"]
        path = work / "service"
        log("rendering the default service and preparing its virtualenv (cached)")
        run_copy(str(ROOT), path, data=answers, defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
        self.service = Service(path, service_venv(path, "3.13"), self.package, answers)
        log("starting PostgreSQL and Redis")
        self.postgres = PostgresServer()
        self.postgres.start()
        self.redis = RedisServer()
        self.redis.start()
        self.database_url = self.postgres.create_database("app")
        self.service.manage("migrate", "--noinput", env=self.env())
        self.service.manage("collectstatic", "--noinput", env=self.env())
        manifest = json.loads((path / "staticfiles" / "staticfiles.json").read_text())
        self.static_path = "/static/" + manifest["paths"]["admin/css/base.css"]
        self.gunicorns = []
        self.overrides = {}  # environment for every gunicorn of the service (--max-requests)

    def env(self, **extra):
        env = self.service.production_env(self.database_url, self.redis.url, **extra)
        env["PYTHONPATH"] = f"{self.service.path / 'src'}{os.pathsep}{BENCH_DIR}"
        return env

    def gunicorn(self, name, workers=None, threads=None, app=None, **extra):
        """Starts gunicorn with the rendered gunicorn.conf.py; returns (process, base URL)."""
        from servers import free_port
        from service_env import http_get, wait_for

        port = free_port()
        env = self.env(
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS=workers,
            GUNICORN_THREADS=threads,
            GUNICORN_CONTROL_SOCKET=self.work / f"gunicorn-{name}.ctl",
            **{**self.overrides, **extra},
        )
        command = [self.service.bin / "gunicorn", "--config", "gunicorn.conf.py", *([app] if app else [])]
        process = self.service.start(*command, env=env, log_name=f"gunicorn-{name}")
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(f"{base}/health/", host="localhost")[0] == 200, timeout=120, message=name)
        self.gunicorns.append(process)
        return process, base

    def stop(self, process):
        self.service.stop(process, signal.SIGTERM, timeout=30)

    def close(self):
        self.service.close()
        self.redis.close()
        self.postgres.close()


def worker_pids(master_pid):
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master_pid:
                pids.append(int(stat.parent.name))
    return sorted(pids)


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------

WRK_THREADS = 2


def wrk_installed():
    return shutil.which("wrk") is not None


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk(url, host, seconds, connections, script=None, env=None, timeout_s=10, headers=()):
    """One wrk run; returns {"rps", "p50_ms", "p99_ms", "requests", "errors"}."""
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
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": latency(50),
        "p99_ms": latency(99),
        "errors": (int(non2xx.group(1)) if non2xx else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    }


def summary(runs, key):
    return median([run[key] for run in runs])


# --------------------------------------------------------------------------
# Figures 3-5: /health/ vs bare WSGI, /ready/ latency, static files
# --------------------------------------------------------------------------


def bench_web(stack, rounds, seconds, connections):
    log("web: starting gunicorn with the rendered config, for the service and for a bare WSGI callable")
    _, service = stack.gunicorn("service")
    _, bare = stack.gunicorn("bare", app="bare_wsgi:application")
    # Diagnostic: the same config without worker recycling (GUNICORN_MAX_REQUESTS=0).
    _, norecycle = stack.gunicorn("no-recycling", GUNICORN_MAX_REQUESTS="0")
    host = stack.domain
    gzip = ["Accept-Encoding: gzip, deflate, br"]  # as every browser sends
    warm = 1
    for url in (
        f"{service}/health/",
        f"{service}/ready/",
        f"{service}{stack.static_path}",
        f"{bare}/",
        f"{norecycle}/health/",
    ):
        wrk(url, host, warm, connections)
    light = 4  # a few clients at once: latency without queueing behind a saturated CPU
    log(f"web: {rounds} rounds of {seconds} s per point, {connections} connections (latency: {light})")
    runs = alternate(
        rounds,
        health=lambda: wrk(f"{service}/health/", host, seconds, connections),
        bare=lambda: wrk(f"{bare}/", host, seconds, connections),
        static=lambda: wrk(f"{service}{stack.static_path}", host, seconds, connections, headers=gzip),
        static_identity=lambda: wrk(f"{service}{stack.static_path}", host, seconds, connections),
        health_no_recycling=lambda: wrk(f"{norecycle}/health/", host, seconds, connections),
        ready_loaded=lambda: wrk(f"{service}/ready/", host, seconds, connections),
        health_light=lambda: wrk(f"{service}/health/", host, seconds, light),
        ready_light=lambda: wrk(f"{service}/ready/", host, seconds, light),
    )
    health, bare_rps, static, static_identity, norecycle_rps = (
        summary(runs[name], "rps") for name in ("health", "bare", "static", "static_identity", "health_no_recycling")
    )
    ready_p50, ready_p99 = summary(runs["ready_light"], "p50_ms"), summary(runs["ready_light"], "p99_ms")
    health_p50, health_p99 = summary(runs["health_light"], "p50_ms"), summary(runs["health_light"], "p99_ms")
    loaded = {
        name: {key: summary(runs[name], key) for key in ("rps", "p50_ms", "p99_ms")}
        for name in ("health", "ready_loaded")
    }
    errors = {name: sum(run["errors"] for run in values) for name, values in runs.items()}
    return {
        "health": {
            "figure": "`/health/` requests/s, rendered `gunicorn.conf.py` (5 workers × 2 threads)",
            "compared_with": "a bare WSGI callable under the same gunicorn settings",
            "value": f"{health:.0f} vs {bare_rps:.0f} req/s (without worker recycling: {norecycle_rps:.0f}, "
            f"{norecycle_rps / bare_rps:.2f}×)",
            "ratio": health / bare_rps,
            "target": "≥ 0.5×",
            "met": health / bare_rps >= 0.5,
        },
        "ready": {
            "figure": f"`/ready/` p50 / p99 latency ({light} connections; PostgreSQL, Redis cache and broker)",
            "compared_with": "`/health/` p50 / p99, same load",
            "value": f"{ready_p50:.1f} / {ready_p99:.1f} ms vs {health_p50:.1f} / {health_p99:.1f} ms "
            f"(at {connections} connections: {loaded['ready_loaded']['p50_ms']:.0f} / "
            f"{loaded['ready_loaded']['p99_ms']:.0f} ms, {loaded['ready_loaded']['rps']:.0f} req/s)",
            "ratio": ready_p99 / health_p99,
            "target": "p99 ≤ 20 ms",
            "met": ready_p99 <= 20,
            "loaded": loaded,
        },
        "static": {
            "figure": "hashed static file (`admin/css/base.css`, gzip accepted) by WhiteNoise, requests/s",
            "compared_with": "`/health/` requests/s",
            "value": f"{static:.0f} vs {health:.0f} req/s (uncompressed: {static_identity:.0f})",
            "ratio": static / health,
            "target": "≥ 1×",
            "met": static / health >= 1.0,
        },
        "_web_samples": {name: runs[name] for name in runs},
        "_web_errors": errors,
        "_service_url": service,
    }


# --------------------------------------------------------------------------
# Figure 6: workers x threads
# --------------------------------------------------------------------------


def default_workers(stack):
    result = stack.service.python("from servicekit.resources import available_cpus; print(2 * available_cpus() + 1)")
    return int(result.stdout.strip())


def sweep(stack, default_url, rounds, seconds, connections, workers_list, threads_list):
    host = stack.domain
    default_w, default_t = default_workers(stack), 2

    def measure(name, workers, threads):
        """The point's req/s and the default's, alternately, `rounds` times."""
        process, url = stack.gunicorn(f"sweep-{name}", workers=workers, threads=threads)
        wrk(f"{url}/health/", host, 1, connections)
        runs = alternate(
            rounds,
            default=lambda: wrk(f"{default_url}/health/", host, seconds, connections),
            point=lambda: wrk(f"{url}/health/", host, seconds, connections),
        )
        stack.stop(process)
        point, default = summary(runs["point"], "rps"), summary(runs["default"], "rps")
        log(f"sweep: {name}: {point:.0f} req/s, default alongside {default:.0f} ({point / default:.2f}×)")
        return {
            "workers": workers,
            "threads": threads,
            "rps": point,
            "default_rps": default,
            "relative": point / default,
        }

    points = {}
    for workers in workers_list:
        for threads in threads_list:
            if (workers, threads) != (default_w, default_t):
                points[f"{workers}x{threads}"] = measure(f"{workers}x{threads}", workers, threads)
    default_name = f"{default_w}x{default_t}"
    points[default_name] = {
        "workers": default_w,
        "threads": default_t,
        "relative": 1.0,
        "rps": median([p["default_rps"] for p in points.values()]),
        "default_rps": None,
    }
    best_name = max(points, key=lambda name: points[name]["relative"])
    best = points[best_name]["relative"]
    # The highest of a dozen noisy ratios overstates its point (the same
    # point measured twice differs by 10-15 % here): the point picked is
    # measured again, and that second, independent ratio is the figure.
    confirmed = best
    if best_name != default_name:
        again = measure(f"{best_name}-again", points[best_name]["workers"], points[best_name]["threads"])
        confirmed = again["relative"]
    return {
        "sweep": {
            "figure": f"`/health/` req/s over workers {workers_list} × threads {threads_list}",
            "compared_with": f"the default `web_workers=0`: {default_w} workers × {default_t} threads",
            "value": f"best {best_name} at {best:.2f}× the default; measured again: {confirmed:.2f}×",
            "ratio": 1 / max(confirmed, 1.0),
            "target": "default ≥ 0.9× the best point",
            "met": 1 / max(confirmed, 1.0) >= 0.9,
            "points": points,
            "best_again": confirmed,
        }
    }


# --------------------------------------------------------------------------
# Figure 8: memory per worker
# --------------------------------------------------------------------------


def bench_memory(stack, requests, connections):
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
                run = wrk(f"{url}/", host, 2, connections, script=BENCH_DIR / "rotate.lua", env=env)
                done, errors = done + run["requests"], errors + run["errors"]
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
    rec, norec = results["recycling"], results["no recycling"]
    idle = median(rec["idle_rss_mib"])
    after = median(rec["phases"][0]["rss_mib"])
    growth_norec = median(norec["phases"][1]["rss_mib"]) - median(norec["phases"][0]["rss_mib"])
    return {
        "memory": {
            "figure": f"RSS per gunicorn worker, idle and after {requests:,} requests "
            "(/health/, /admin/login/, static in turn)",
            "compared_with": "—",
            "value": f"{idle:.0f} MiB idle, {after:.0f} MiB after (median of workers); "
            f"without recycling +{growth_norec:.1f} MiB over the next {requests:,}",
            "ratio": after / idle,
            "target": "report; no growth beyond `max_requests` recycling",
            "met": None,
            "detail": results,
        }
    }


# --------------------------------------------------------------------------
# Figure 7: Celery
# --------------------------------------------------------------------------


def bench_celery(stack, rounds, tasks):
    from service_env import wait_for

    service = stack.service
    results = {"rendered": [], "defaults": []}

    def run(name):
        alive = stack.work / f"worker-{name}.alive"
        env = stack.env(CELERY_WORKER_ALIVE_FILE=alive, BENCH_PACKAGE=stack.package)
        app = stack.package if name == "rendered" else "celery_defaults"
        service.python("import django; django.setup(); from celery import current_app as a; a.control.purge()", env=env)
        worker = service.start_worker(env, app=app, log_name=f"worker-{name}")
        try:
            wait_for(alive.exists, timeout=120, message=f"the {name} worker")
            out = service.run(service.bin / "python", BENCH_DIR / "celery_producer.py", tasks, env=env, timeout=600)
            result = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            service.stop(worker, signal.SIGTERM, timeout=60)
        log(f"celery ({name}): {tasks} tasks in {result['seconds']:.2f} s")
        results[name].append(result["seconds"])
        return result["seconds"]

    log(f"celery: {rounds} rounds of {tasks} tasks, rendered settings / Celery defaults")
    alternate(rounds, rendered=lambda: run("rendered"), defaults=lambda: run("defaults"))
    rendered, defaults = median(results["rendered"]), median(results["defaults"])
    cpus = default_workers(stack) // 2
    return {
        "celery": {
            "figure": f"Celery: {tasks:,} no-op tasks end to end, rendered worker settings "
            f"(late acks, prefetch 1; concurrency {cpus})",
            "compared_with": "Celery's defaults (early acks, prefetch 4), same broker and concurrency",
            "value": f"{tasks / rendered:.0f} vs {tasks / defaults:.0f} tasks/s",
            "ratio": defaults / rendered,
            "target": "report the ratio; explain the trade-off",
            "met": None,
            "samples": results,
        }
    }


# --------------------------------------------------------------------------
# Figures 9-11: the production image and the compose stack
# --------------------------------------------------------------------------


def bench_docker(work, rounds, answers):
    """Cold build vs rebuild after a one-line change, image size, `up` to healthy.

    Uses the engine and images of the container tests (tests/docker_env.py):
    the official base image when it can be pulled, otherwise the local
    stand-in. Returns ({}, reason) when no engine can be used.
    """
    import secrets

    import docker_env
    import yaml
    from copier import run_copy
    from docker_stack import ComposeProject, build, compose_files, env_file, image_size, step_cached

    problem = docker_env.engine_problem()
    if problem is not None:
        return {}, problem
    service = work / "service"
    log("docker: rendering the default service and preparing the base and service images")
    run_copy(str(ROOT), service, data=answers, defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
    recorded = yaml.safe_load((service / ".copier-answers.yml").read_text())
    base = docker_env.python_base_image(recorded["python_version"])
    docker_env.ensure_images(docker_env.compose_images(service / "docker-compose.prod.yml"), base)
    tag = f"template-bench-{secrets.token_hex(3)}:latest"
    urls = service / "src" / recorded["package_name"] / "urls.py"
    reused = []

    def cold():
        return build(service, tag, base, "--no-cache")[0]

    def rebuild():
        # Unique, or the build cache may hold this very change from an earlier run.
        urls.write_text(urls.read_text() + f"# a one-line change {secrets.token_hex(8)}\n")
        seconds, progress = build(service, tag, base)
        reused.append(step_cached(progress, "pip install"))
        return seconds

    ups, memory = [], []
    try:
        build(service, tag, base)  # the build cache a rebuild starts from
        log(f"docker: {rounds} rounds of cold build / rebuild after a one-line change")
        builds = alternate(rounds, cold=cold, rebuild=rebuild)
        added = image_size(tag) - image_size(base)
        env_file(
            service,
            {
                "SECRET_KEY": secrets.token_urlsafe(50),
                "POSTGRES_PASSWORD": secrets.token_hex(24),
                "EMAIL_URL": "consolemail://",
                "IMAGE": tag,
            },
        )
        files = compose_files(service)
        log(f"docker: {rounds} rounds of `docker compose up` to all healthy, then down")
        for _ in range(rounds):
            project = ComposeProject(service, "bench", files)
            try:
                ups.append(project.up())
                memory.append(project.memory())
            finally:
                project.down()
    finally:
        docker_env.docker("rmi", tag, check=False)
    cold_s, rebuild_s = median(builds["cold"]), median(builds["rebuild"])
    stand_in = base == docker_env.STAND_IN_BASE.format(version=recorded["python_version"])
    stand_in = " (a local stand-in made from Debian 13: no registry answered)" if stand_in else ""
    return {
        "rebuild": {
            "figure": "rebuild of the production image after a one-line Python change",
            "compared_with": "the cold build (`--no-cache`: every layer rebuilt; pip's download cache warm)",
            "value": f"{rebuild_s:.1f} s vs {cold_s:.0f} s; dependency layer reused: "
            f"{'every time' if all(reused) else 'NOT every time'}",
            "ratio": rebuild_s / cold_s,
            "target": "≤ 0.15×",
            "met": rebuild_s / cold_s <= 0.15 and all(reused),
            "samples": builds,
        },
        "image": {
            "figure": "production image size",
            "compared_with": f"its base image `{base}`{stand_in}",
            "value": f"{image_size_mb(added + image_size(base))} = {image_size_mb(image_size(base))} "
            f"+ {image_size_mb(added)}",
            "ratio": (added + image_size(base)) / image_size(base),
            "target": "≤ 150 MB added",
            "met": added <= 150e6,
        },
        "up": {
            "figure": "`docker compose up` to all healthy (images present; db, redis, migrate, web, worker, "
            "beat, Caddy)",
            "compared_with": "—",
            "value": f"{median(ups):.1f} s (stack memory at idle {image_size_mb(median(memory))})",
            "ratio": None,
            "target": "report; ≤ 30 s",
            "met": median(ups) <= 30,
            "samples": {"up_s": ups, "memory_bytes": memory},
        },
    }, None


def image_size_mb(size):
    return f"{size / 1e6:.0f} MB"


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

ORDER = ["copy", "update", "health", "ready", "static", "sweep", "celery", "memory", "rebuild", "image", "up"]


def markdown(figures, meta):
    lines = [
        "| figure | compared with, in the same run | result | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for key in ORDER:
        if key not in figures:
            continue
        f = figures[key]
        met = {True: "yes", False: "**no**", None: "—"}[f["met"]]
        ratio = "" if f["ratio"] is None else f"{f['ratio']:.2f}×"
        lines.append(f"| {f['figure']} | {f['compared_with']} | {f['value']} | {ratio} | {f['target']} | {met} |")
    if meta.get("docker_skipped"):
        lines.append(f"| image and stack figures | — | not measured: {meta['docker_skipped']} | | | |")
    head = (
        f"Measured {meta['date']} on {meta['machine']}, by `python3 scripts/bench.py`: "
        f"medians of {meta['rounds']} alternating runs (A B A B …); web figures with wrk, "
        f"{meta['connections']} connections, {meta['seconds']} s per run."
    )
    if any(key in figures for key in ("rebuild", "image", "up")):
        head += f" Image and stack figures: medians of {meta['docker_rounds']} runs."
    if meta.get("what_if"):
        head += f" **What-if run: {meta['what_if']}.**"
    text = "\n".join([head, "", *lines, ""])
    if "sweep" in figures:
        points = figures["sweep"]["points"]
        workers = sorted({p["workers"] for p in points.values()})
        threads = sorted({p["threads"] for p in points.values()})
        rows = ["| workers \\ threads | " + " | ".join(map(str, threads)) + " |", "|---|" + "---|" * len(threads)]
        for w in workers:
            cells = []
            for t in threads:
                p = points.get(f"{w}x{t}")
                cells.append(
                    "" if p is None else f"{p['relative']:.2f}×" + (" (default)" if p["default_rps"] is None else "")
                )
            rows.append(f"| {w} | " + " | ".join(cells) + " |")
        text += "\n`/health/` throughput relative to the default, measured alongside it:\n\n" + "\n".join(rows) + "\n"
    return text


README_MARKERS = ("<!-- benchmarks:start -->\n", "<!-- benchmarks:end -->")


def show_in_readme(table):
    """Puts the table between the README's benchmark markers."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = README_MARKERS
    if start not in text or end not in text:
        log("README.md has no benchmark markers: the table is only in benchmarks/results.md")
        return
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    readme.write_text(f"{before}{start}{table}{end}{after}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups: " + ", ".join(GROUPS))
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs per comparison")
    parser.add_argument("--seconds", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections for throughput")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=10000, help="requests for the memory figure")
    parser.add_argument("--workers", default="1,3,5,9")
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--out", type=Path, default=BENCH_DIR)
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help="what-if: GUNICORN_MAX_REQUESTS for the service's gunicorns (default: the rendered one)",
    )
    args = parser.parse_args()
    groups = args.only.split(",")

    from conftest import REQUIRED_ANSWERS

    for name, value in GIT_IDENTITY.items():
        os.environ.setdefault(name, value)

    started = time.monotonic()
    figures = {}
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}",
        "rounds": args.rounds,
        "seconds": args.seconds,
        "connections": args.connections,
    }
    web_groups = {"web", "sweep", "memory"} & set(groups)
    if web_groups and not wrk_installed():
        print(
            "wrk is not installed: the web figures need it. Install it with `apt-get install wrk` "
            "(Debian/Ubuntu) or `brew install wrk` (macOS); skipping " + ", ".join(sorted(web_groups)) + ".",
            file=sys.stderr,
        )
        groups = [g for g in groups if g not in web_groups]

    with tempfile.TemporaryDirectory(prefix="template-bench-") as temp:
        work = Path(temp)
        if "copier" in groups:
            (work / "copier").mkdir()
            figures.update(bench_copier(work / "copier", args.rounds, REQUIRED_ANSWERS))
        stack = None
        try:
            if set(groups) & {"web", "sweep", "memory", "celery"}:
                (work / "stack").mkdir()
                stack = Stack(work / "stack", dict(REQUIRED_ANSWERS))
                if args.max_requests is not None:
                    stack.overrides["GUNICORN_MAX_REQUESTS"] = str(args.max_requests)
                    meta["what_if"] = f"GUNICORN_MAX_REQUESTS={args.max_requests} (not the rendered default)"
            if "web" in groups or "sweep" in groups:
                web = bench_web(stack, args.rounds if "web" in groups else 1, args.seconds, args.connections)
                url = web.pop("_service_url")
                meta["web_errors"] = web.pop("_web_errors")
                meta["web_samples"] = web.pop("_web_samples")
                if "web" in groups:
                    figures.update(web)
                if "sweep" in groups:
                    figures.update(
                        sweep(
                            stack,
                            url,
                            # Neighbouring points differ by less than this machine's
                            # noise: the full rounds and run length, like the web figures.
                            args.rounds,
                            args.seconds,
                            args.connections,
                            [int(w) for w in args.workers.split(",")],
                            [int(t) for t in args.threads.split(",")],
                        )
                    )
            if "memory" in groups:
                figures.update(bench_memory(stack, args.requests, args.connections))
            if "celery" in groups:
                figures.update(bench_celery(stack, max(2, args.rounds - 2), args.tasks))
        finally:
            if stack is not None:
                stack.close()
        if "docker" in groups:
            (work / "docker").mkdir()
            meta["docker_rounds"] = max(2, args.rounds - 2)  # a cold build takes about a minute
            docker_figures, meta["docker_skipped"] = bench_docker(
                work / "docker", meta["docker_rounds"], REQUIRED_ANSWERS
            )
            figures.update(docker_figures)
    meta["total_seconds"] = round(time.monotonic() - started)

    text = markdown(figures, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "figures": figures}, indent=2, default=str) + "\n")
    if args.out.resolve() == BENCH_DIR.resolve():
        show_in_readme(text)
    print()
    print(text)
    log(f"done in {meta['total_seconds']} s; wrote {args.out / 'results.md'} and {args.out / 'results.json'}")


def exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # so that servers and gunicorns are stopped on the way out


if __name__ == "__main__":
    reexec_in_venv()
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    main()
