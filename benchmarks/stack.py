"""The rendered default service, for real, for the web, sweep, memory and
Celery figures: its venv, migrated and collectstatic'ed on real PostgreSQL
and Redis, with production settings."""

import contextlib
import json
import os
import signal
from pathlib import Path

from copier import run_copy

from benchmarks.measure import log
from harness.answers import KIT, ROOT, package_of, python_version_of
from harness.servers import PostgresServer, RedisServer, free_port
from harness.service import Service, http_get, service_venv, wait_for

# Files the service's own processes run (gunicorn, the Celery worker): on
# their PYTHONPATH, apart from this package, whose module names (celery,
# copier, docker) would shadow the libraries of the same names.
IN_SERVICE = Path(__file__).resolve().parent / "in_service"


class Stack:
    """The default service with its venv, on real PostgreSQL and Redis; gunicorns started on demand."""

    def __init__(self, work, answers, overrides=None):
        self.work = work
        self.domain = answers["domain"]
        # Environment for every gunicorn of the service (a what-if setting).
        self.overrides = overrides or {}
        self._default_url = None
        path = work / "service"
        log("rendering the default service and preparing its virtualenv (cached)")
        run_copy(str(ROOT), path, data=answers, defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
        self.service = Service(path, service_venv(path, python_version_of(answers)), package_of(answers), answers)
        log("starting PostgreSQL and Redis")
        self.postgres = PostgresServer()
        self.redis = RedisServer()
        self.postgres.start()
        self.redis.start()
        self.database_url = self.postgres.create_database("app")
        self.service.manage("migrate", "--noinput", env=self.env())
        self.service.manage("collectstatic", "--noinput", env=self.env())
        manifest = json.loads((path / "staticfiles" / "staticfiles.json").read_text())
        self.static_path = "/static/" + manifest["paths"]["admin/css/base.css"]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.service.close()
        self.redis.close()
        self.postgres.close()

    @property
    def package(self):
        return self.service.package

    def env(self, **extra):
        env = self.service.production_env(self.database_url, self.redis.url, **extra)
        env["PYTHONPATH"] = f"{self.service.path / 'src'}{os.pathsep}{IN_SERVICE}"
        return env

    def available_cpus(self):
        """The CPUs the rendered service counts for its defaults (cgroup quota, affinity)."""
        result = self.service.python(f"from {KIT}.resources import available_cpus; print(available_cpus())")
        return int(result.stdout.strip())

    def gunicorn(self, name, workers=None, threads=None, app=None, unset=(), **extra):
        """Starts gunicorn with the rendered gunicorn.conf.py; returns (process, base URL).

        extra: environment variables to set; unset: names to leave out of its environment."""
        port = free_port()
        env = self.env(
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS=workers,
            GUNICORN_THREADS=threads,
            GUNICORN_CONTROL_SOCKET=self.work / f"gunicorn-{name}.ctl",
            **{**self.overrides, **extra},
        )
        for variable in unset:
            env.pop(variable, None)
        command = [self.service.bin / "gunicorn", "--config", "gunicorn.conf.py", *([app] if app else [])]
        process = self.service.start(*command, env=env, log_name=f"gunicorn-{name}")
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(f"{base}/health/", host="localhost")[0] == 200, timeout=120, message=name)
        return process, base

    def default_url(self):
        """The default service under gunicorn: started once, for the web figures and
        as the sweep's reference."""
        if self._default_url is None:
            _, self._default_url = self.gunicorn("service")
        return self._default_url

    def stop(self, process):
        self.service.stop(process, signal.SIGTERM, timeout=30)


def worker_pids(master_pid):
    """The processes whose parent is master_pid (gunicorn's workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master_pid:
                pids.append(int(stat.parent.name))
    return sorted(pids)


def cpu_seconds(master_pid):
    """CPU time (user + system) used so far by gunicorn: the master, its live
    workers, and the workers it reaped (the master's children's times)."""
    ticks = os.sysconf("SC_CLK_TCK")

    def times(pid, children):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime: fields 14-17 of proc(5), 12-15 here.
        return sum(int(value) for value in fields[11 : 15 if children else 13])

    total = times(master_pid, children=True)
    for pid in worker_pids(master_pid):
        with contextlib.suppress(OSError):
            total += times(pid, children=False)
    return total / ticks


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def smaps_mib(pid):
    """{"rss", "pss", "uss"} of a process in MiB, from /proc/<pid>/smaps_rollup:
    PSS shares each page among the processes that map it, USS counts only the
    process's private pages (what its exit would free)."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            values[name] = int(rest.split()[0]) / 1024
    return {
        "rss": values["Rss"],
        "pss": values["Pss"],
        "uss": values["Private_Clean"] + values["Private_Dirty"],
    }
