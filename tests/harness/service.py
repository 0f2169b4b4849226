"""Run a rendered service for real: its own virtualenv, its commands, its processes.

Virtualenvs are expensive, so they are cached by the hash of the service's
rendered requirements and the interpreter's version, under
$TEMPLATE_TEST_CACHE (default ~/.cache/django-service-template).
"""

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness import processes
from harness.answers import answers_for, package_of, python_version_of
from harness.policy import require

# A valid production SECRET_KEY (50+ random characters), for tests only.
SECRET_KEY = "k3P9vQ2mX7rT4wY8zA1bC6dE0fG5hJ2nL9sU3vW7xZ4yQ8tR1pO6iM3kN0jH5gF"

# The uv of the suite's own environment (pyproject.toml's test group).
UV = Path(sys.executable).parent / "uv"
CACHE = Path(os.environ.get("TEMPLATE_TEST_CACHE", Path.home() / ".cache" / "django-service-template"))

# Variables of the test process that must not leak into a service's settings.
SERVICE_VARIABLES_PREFIXES = ("DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "GUNICORN_", "AWS_", "SENTRY_")
SERVICE_VARIABLES = {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "EMAIL_URL", "STATIC_ROOT", "MEDIA_ROOT"}


def find_python(version):
    """An interpreter of the given X.Y version: on PATH, or installed by pyenv."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(map(str, pyenv_root.glob(f"versions/{version}.*/bin/python{version}")), reverse=True)
    for candidate in filter(None, candidates):
        result = subprocess.run(
            [candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if result.returncode == 0 and result.stdout.strip() == version:
            return candidate
    return None


def make(service, *targets, python_version):
    """The service's `make TARGET...`, its .venv made with Python python_version; the CompletedProcess."""
    python = find_python(python_version)
    require(python, f"Python {python_version} is not installed (on PATH or with pyenv)")
    return subprocess.run(
        ["make", *targets, f"PYTHON={python}"], cwd=service, capture_output=True, text=True, timeout=900
    )


def service_venv(service, python_version):
    """The bin directory of a virtualenv with the service's hashed lock requirements/dev.txt."""
    python = find_python(python_version)
    require(python, f"Python {python_version} is not installed (on PATH or with pyenv)")
    requirements = service / "requirements"
    digest = hashlib.sha256(python_version.encode())
    # The lock lists every package with its hashes: it is the whole key.
    digest.update((requirements / "dev.txt").read_bytes())
    venv = CACHE / "venvs" / f"py{python_version}-{digest.hexdigest()[:16]}"
    bin_dir = venv / "bin"
    venv.parent.mkdir(parents=True, exist_ok=True)
    # One builder per venv, also across pytest-xdist workers.
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "ready").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
            # As the service's `make install` does: exactly the lock, hashes checked.
            subprocess.run(
                [UV, "pip", "sync", "--quiet", "--python", bin_dir / "python", "--require-hashes", "dev.txt"],
                cwd=requirements,
                check=True,
            )
            (venv / "ready").write_text(python)
    return bin_dir


class Service:
    """A rendered service with its virtualenv: runs its commands and processes."""

    def __init__(self, path, bin_dir, package, answers=None):
        self.path = path
        self.bin = bin_dir
        self.package = package
        self.answers = answers or {}
        self.processes = []

    def env(self, **variables):
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(SERVICE_VARIABLES_PREFIXES) and key not in SERVICE_VARIABLES
        }
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.bin.parent)
        # As in the image (Dockerfile: PYTHONPATH=/app/src).
        env["PYTHONPATH"] = str(self.path / "src")
        env.update({key: str(value) for key, value in variables.items() if value is not None})
        return env

    def production_env(self, database_url, redis_url, **extra):
        """The environment of production settings: every required variable set,
        for the service's answers (an S3 bucket, the proxy's address)."""
        variables = {
            "DJANGO_SETTINGS_MODULE": f"{self.package}.settings.production",
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "EMAIL_URL": "consolemail://",
            "STATIC_ROOT": self.path / "staticfiles",
            "MEDIA_ROOT": self.path / "media",
        }
        if self.answers.get("media_backend") == "s3":
            variables["AWS_STORAGE_BUCKET_NAME"] = "media"
        if self.answers.get("reverse_proxy") == "none":
            variables["FORWARDED_ALLOW_IPS"] = "127.0.0.1"
        return self.env(**{**variables, **extra})

    def run(self, *command, env=None, timeout=300, check=True):
        """Runs a command in the service directory; returns the CompletedProcess."""
        result = subprocess.run(
            [str(part) for part in command],
            cwd=self.path,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def manage(self, *args, env=None, **kwargs):
        return self.run(self.bin / "python", "src/manage.py", *args, env=env, **kwargs)

    def python(self, code, env=None, **kwargs):
        """Runs Python code with src/ importable, as the service's processes do."""
        return self.run(self.bin / "python", "-c", code, env=env, **kwargs)

    def start(self, *command, env=None, log_name="process"):
        """Starts a long-running process in its own process group; stopped at close()."""
        log = (self.path / f"{log_name}.log").open("w")
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=self.path,
            env=env or self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log_path = self.path / f"{log_name}.log"
        self.processes.append(process)
        return process

    def start_worker(self, env, *extra, app=None, log_name="worker"):
        """A Celery worker with the production stack's flags (app: the service's own by default)."""
        return self.start(
            self.bin / "celery",
            f"--app={app or self.package}",
            "worker",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
            *extra,
            env=env,
            log_name=log_name,
        )

    def stop(self, process, sig=signal.SIGTERM, timeout=30):
        """sig to the process and everything it started; its exit status."""
        return processes.stop(process, sig, timeout)

    def close(self):
        processes.stop_all(self.processes)


def prepare_service(source, destination, answers):
    """A private copy of a rendered service (running it writes logs, SQLite,
    static files) with the virtualenv of its requirements, as a Service."""
    shutil.copytree(source, destination)
    return Service(destination, service_venv(destination, python_version_of(answers)), package_of(answers), answers)


def variant_service(render, tmp_path_factory, variant, prefix="run"):
    """A module fixture's body: the variant rendered and prepared in a
    directory of its own, its processes stopped at the end."""
    path = tmp_path_factory.mktemp(f"{prefix}-{variant}") / "service"
    service = prepare_service(render(variant), path, answers_for(variant))
    yield service
    service.close()


def log_of(process):
    return process.log_path.read_text(errors="replace")


def http_get(url, host=None, timeout=10):
    """(status, headers, body) of a GET; redirects are not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_for(condition, timeout=30, interval=0.2, message="condition", ignore=(OSError, urllib.error.URLError)):
    """Polls condition() until it returns a truthy value; returns that value.

    The errors in ignore count as "not yet" (a server still starting refuses
    connections); any other error ends the wait at once."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except ignore as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last error: {last_error})")
