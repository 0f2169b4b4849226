"""What the rendered files say: the production wiring is right by construction."""

import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from harness.answers import KIT, PACKAGE, VARIANTS, answers_for, package_of, python_version_of
from harness.docker import compose_images
from harness.policy import require

LONG_RUNNING = {"db", "backup", "redis", "cache", "web", "worker", "beat", "proxy"}


def compose(service, name="docker-compose.prod.yml"):
    return yaml.safe_load((service / name).read_text())


def seconds(duration):
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"unexpected duration {duration!r}"
    return int(match.group(1))


@pytest.mark.parametrize("variant", list(VARIANTS))
class TestProductionCompose:
    def test_services_follow_the_answers(self, render, variant):
        answers = answers_for(variant)
        services = compose(render(variant))["services"]
        expected = {"db", "backup", "redis", "cache", "migrate", "web", "worker"}
        if answers.get("use_celery_beat", True):
            expected.add("beat")
        if answers.get("reverse_proxy", "caddy") == "caddy":
            expected.add("proxy")
        assert {name for name, spec in services.items() if "profiles" not in spec} == expected
        # Operators' one-off containers and the optional Prometheus, which
        # `up` does not start.
        assert {name: spec["profiles"] for name, spec in services.items() if "profiles" in spec} == {
            "verify": ["tools"],
            "prometheus": ["monitoring"],
        }

    def test_only_web_or_the_proxy_is_published_and_web_only_on_loopback_by_default(self, render, variant):
        services = compose(render(variant))["services"]
        published = {name: spec["ports"] for name, spec in services.items() if "ports" in spec}
        # The optional Prometheus: on loopback only.
        assert published.pop("prometheus") == ["127.0.0.1:${PROMETHEUS_PORT:-9090}:9090"]
        if answers_for(variant).get("reverse_proxy", "caddy") == "caddy":
            assert set(published) == {"proxy"}
        else:
            # A port published on every interface bypasses the host's firewall.
            assert published == {"web": ["${WEB_BIND:-127.0.0.1}:${WEB_PORT:-8000}:8000"]}

    def test_migrate_is_the_only_migrator(self, render, variant):
        services = compose(render(variant))["services"]
        migrate = services["migrate"]
        assert migrate["command"] == ["python", "src/manage.py", "migrate_locked", "--noinput"]
        assert migrate["restart"] == "no"
        assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
        for name, service in services.items():
            if name != "migrate":
                assert "migrate" not in str(service.get("command", "")), name

    def test_app_services_start_after_migrations_and_healthy_servers(self, render, variant):
        services = compose(render(variant))["services"]
        for name in {"web", "worker", "beat"} & set(services):
            assert services[name]["depends_on"] == {
                "db": {"condition": "service_healthy"},
                "redis": {"condition": "service_healthy"},
                "cache": {"condition": "service_healthy"},
                "migrate": {"condition": "service_completed_successfully"},
            }, name

    def test_every_long_running_service_has_a_healthcheck(self, render, variant):
        services = compose(render(variant))["services"]
        for name in LONG_RUNNING & set(services):
            check = services[name]["healthcheck"]
            assert check["test"][0] in ("CMD", "CMD-SHELL"), name
            assert "start_interval" in check, name

    def test_grace_periods_exceed_the_services_own_timeouts(self, render, variant):
        service = render(variant)
        services = compose(service)["services"]
        gunicorn = (service / "gunicorn.conf.py").read_text()
        graceful = int(re.search(r'"GUNICORN_GRACEFUL_TIMEOUT", default=(\d+)', gunicorn).group(1))
        assert seconds(services["web"]["stop_grace_period"]) > graceful
        base = next(service.glob("src/*/settings/base.py")).read_text()
        time_limit = int(re.search(r'"CELERY_TASK_TIME_LIMIT", default=(\d+)', base).group(1))
        assert seconds(services["worker"]["stop_grace_period"]) > time_limit

    def test_worker_runs_with_explicit_production_flags(self, render, variant):
        command = compose(render(variant))["services"]["worker"]["command"]
        # The service's own Celery app, by the package the answers name.
        # No banner (the output is JSON lines); the log level is Django's.
        assert command[:3] == ["celery", "--quiet", f"--app={package_of(answers_for(variant))}"]
        assert {"worker", "--without-mingle", "--without-gossip"} <= set(command)
        assert not any(argument.startswith("--loglevel") for argument in command)

    def test_no_secret_is_inline(self, render, variant):
        text = (render(variant) / "docker-compose.prod.yml").read_text()
        for line in text.splitlines():
            # A mapping's value (NAME_PASSWORD: ...), or an item of a
            # command (- ${REDIS_PASSWORD...}).
            if key := re.match(r"\s*[\w-]*(PASSWORD|SECRET|KEY)\w*:(.*)", line):
                assert key.group(2).strip().startswith("${"), line
            elif item := re.match(r"\s*- (.*(PASSWORD|SECRET).*)", line):
                assert item.group(1).startswith("${"), line

    def test_database_is_archived_into_a_repository_outside_the_volumes(self, render, variant):
        service = render(variant)
        config = compose(service)
        db, backup = config["services"]["db"], config["services"]["backup"]
        options = dict(item.split("=", 1) for item in db["command"][2::2])
        assert db["command"][:2] == ["postgres", "-c"] and set(db["command"][1::2]) == {"-c"}
        assert options == {
            "archive_mode": "on",
            "archive_command": "pgbackrest archive-push %p",
            "archive_timeout": "${BACKUP_MAX_DATA_LOSS_SECONDS:-60}",
        }
        # The repository is a host directory, which `down -v` does not delete.
        repository = "${BACKUP_DIR:-./backups}:/var/lib/pgbackrest"
        assert repository in db["volumes"] and backup["volumes"][: len(db["volumes"])] == db["volumes"]
        assert not any(name.startswith("backup") for name in config["volumes"])
        assert backup["command"] == ["backup-scheduler"]
        # Backups and their checks yield the CPU to the stack's requests.
        assert backup["cpu_shares"] == config["services"]["verify"]["cpu_shares"] == 256
        assert all(
            "cpu_shares" not in spec for name, spec in config["services"].items() if name not in ("backup", "verify")
        )
        # Or a bucket: both services get the same BACKUP_S3_* values, which
        # their entrypoint maps to pgBackRest's options.
        slug = yaml.safe_load((service / ".copier-answers.yml").read_text())["project_slug"]
        for spec in (db, backup):
            assert spec["environment"]["BACKUP_S3_BUCKET"] == "${BACKUP_S3_BUCKET:-}"
            assert spec["environment"]["BACKUP_S3_SECRET"] == "${BACKUP_S3_SECRET:-}"
            assert spec["environment"]["BACKUP_S3_PATH"] == f"${{BACKUP_S3_PATH:-/{slug}}}"
            assert spec["environment"]["BACKUP_S3_CA_FILE"] == "${BACKUP_S3_CA_FILE:+/etc/pgbackrest/s3-ca.pem}"
        assert "${BACKUP_S3_CA_FILE:-/dev/null}:/etc/pgbackrest/s3-ca.pem:ro" in db["volumes"]
        assert backup["environment"]["PGBACKREST_REPO1_RETENTION_FULL"] == "${BACKUP_RETENTION_FULL:-7}"
        assert backup["depends_on"] == {"db": {"condition": "service_healthy"}}
        assert "/backups/" in (service / ".gitignore").read_text().split()
        assert "/backups/" in (service / ".dockerignore").read_text().split()
        # No make target or backup command takes the stack down, let alone its volumes.
        makefile = (service / "Makefile").read_text()
        assert {"backup:", "backup-list:", "restore:"} <= set(makefile.split())
        recipes = [line for line in makefile.splitlines() if line.startswith("\t")]
        commands = [line for line in (service / "scripts/backup.sh").read_text().splitlines() if "#" not in line]
        # (`config --volumes` only lists the volumes' names.)
        stack_wide = r"\bdown\b|docker compose .*( -v\b|(?<!config )--volumes)|docker volume rm"
        assert recipes and not [line for line in recipes + commands if re.search(stack_wide, line)]
        # The one volume a command removes: verify's throw-away container's own.
        removals = [line.strip() for line in commands if re.search(r" -v\b|(?<!config )--volumes", line)]
        assert removals == ['trap "docker rm --force --volumes ${container} >/dev/null" EXIT']

    def test_media_files_are_copied_only_from_a_volume_and_s3_is_told_to_version_its_bucket(self, render, variant):
        service = render(variant)
        config = compose(service)
        db, backup = config["services"]["db"], config["services"]["backup"]
        readme = (service / "README.md").read_text()
        if answers_for(variant).get("media_backend", "local") == "local":
            # Read-only: the backup service copies the files and never changes them.
            assert backup["volumes"] == [*db["volumes"], "media:/srv/media:ro"]
            assert "### Media backups" in readme and "make restore-media FORCE=1" in readme
            assert "Turn on versioning" not in readme
        else:
            assert backup["volumes"] == db["volumes"]
            assert "### Media files in S3" in readme and "restore-media" not in readme
            assert "Turn on versioning" in readme and "lifecycle rule for old versions" in readme
            assert "NoncurrentVersionExpiration" in readme
        # The scheduler always asks; the script copies only a mounted volume.
        scheduler = (service / "docker/postgres/backup-scheduler.sh").read_text()
        assert "    media-backup copy --if-mounted" in scheduler
        dockerfile = (service / "docker/postgres/Dockerfile").read_text()
        assert "COPY media-backup.sh /usr/local/bin/media-backup" in dockerfile
        assert {"backup-media:", "restore-media:"} <= set((service / "Makefile").read_text().split())

    def test_data_and_media_are_named_volumes(self, render, variant):
        config = compose(render(variant))
        volumes = set(config["volumes"])
        assert {"postgres-data", "redis-data"} <= volumes
        local = answers_for(variant).get("media_backend", "local") == "local"
        assert ("media" in volumes) is local


@pytest.mark.parametrize("variant", list(VARIANTS))
class TestDockerfile:
    def test_collectstatic_uses_the_production_settings_module(self, render, variant):
        service = render(variant)
        package = package_of(answers_for(variant))
        dockerfile = (service / "Dockerfile").read_text()
        production = dockerfile.split("FROM base AS production", 1)[1].split("FROM base AS development", 1)[0]
        settings_line = f"ENV DJANGO_SETTINGS_MODULE={package}.settings.production"
        assert production.index(settings_line) < production.index("collectstatic")
        assert (service / "src" / package / "settings" / "production.py").is_file()

    def test_gunicorn_starts_with_its_config(self, render, variant):
        dockerfile = (render(variant) / "Dockerfile").read_text()
        assert 'CMD ["gunicorn", "--config", "gunicorn.conf.py"]' in dockerfile

    def test_image_runs_as_a_non_root_user_with_a_healthcheck(self, render, variant):
        production = (render(variant) / "Dockerfile").read_text().split("FROM base AS production", 1)[1]
        production = production.split("FROM base AS development", 1)[0]
        user = re.search(r"^USER (\d+):(\d+)$", production, re.M)
        assert user and user.group(1) != "0" and user.group(2) != "0"
        assert "HEALTHCHECK" in production

    def test_base_image_is_a_build_argument(self, render, variant):
        version = python_version_of(answers_for(variant))
        dockerfile = (render(variant) / "Dockerfile").read_text()
        assert f"ARG PYTHON_IMAGE=python:{version}-slim-trixie" in dockerfile
        assert "FROM ${PYTHON_IMAGE} AS base" in dockerfile

    def test_secrets_and_tests_stay_out_of_the_build_context(self, render, variant):
        ignored = (render(variant) / ".dockerignore").read_text().splitlines()
        assert {".env", ".git/", "tests/"} <= set(ignored)


# Where the rendered code reads environment variables.
READERS = [
    re.compile(r'\benv\.\w+\(\s*"([A-Z][A-Z0-9_]+)"'),  # servicekit.env: env.str("NAME", ...)
    re.compile(r'os\.environ(?:\.get|\.setdefault)?[\[(]\s*"([A-Z][A-Z0-9_]+)"'),
    re.compile(r'"([A-Z][A-Z0-9_]+)" in os\.environ'),
    re.compile(r"\$\{([A-Z][A-Z0-9_]+)"),  # compose interpolation
    re.compile(r"\{\$([A-Z][A-Z0-9_]+)"),  # Caddyfile placeholders
]
# Set by tools for themselves, not by an operator.
NOT_CONFIGURATION = {"RUN_MAIN"}


def variables_read(service):
    found = set()
    files = [*service.glob("src/**/*.py"), service / "gunicorn.conf.py"]
    files += [service / "docker-compose.prod.yml", service / "docker-compose.yml"]
    if (service / "Caddyfile").exists():
        files.append(service / "Caddyfile")
    for path in files:
        text = path.read_text()
        for pattern in READERS:
            found.update(pattern.findall(text))
    return found - NOT_CONFIGURATION


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_env_example_lists_every_variable_read(render, variant):
    service = render(variant)
    listed = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", (service / ".env.example").read_text(), re.M))
    read = variables_read(service)
    # The scanner itself must see variables read in each of those places.
    assert {
        "DJANGO_SETTINGS_MODULE",
        "CSRF_TRUSTED_ORIGINS",
        "GUNICORN_WORKERS",
        "GUNICORN_THREADS",
        "GUNICORN_LOG_LEVEL",
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "POSTGRES_PASSWORD",
        "PYTHON_IMAGE",
        "POSTGRES_IMAGE",
        "REDIS_IMAGE",
    } <= read
    assert ("CADDY_IMAGE" in read) is (answers_for(variant).get("reverse_proxy", "caddy") == "caddy")
    assert sorted(read - listed) == []


# A docker CLI that records its arguments and answers `compose config` as an
# s3 stack's would: no media volume.
S3_DOCKER = """#!/bin/sh
echo "$*" >>"$DOCKER_CALLS"
case "$*" in
    "compose config --volumes") printf 'postgres-data\\npostgres-run\\nredis-data\\n' ;;
esac
"""


def test_media_commands_of_an_s3_stack_say_where_the_files_are_and_run_nothing(render, tmp_path):
    service = render("s3-no-proxy-no-beat-sentry")
    (tmp_path / "docker").write_text(S3_DOCKER)
    (tmp_path / "docker").chmod(0o755)
    calls = tmp_path / "calls"
    environment = {"PATH": f"{tmp_path}:/usr/bin:/bin", "DOCKER_CALLS": str(calls)}
    refusals = {("media-now",): "", ("restore-media", "--force"): " (nothing was stopped or changed)"}
    for arguments, ending in refusals.items():
        calls.write_text("")
        result = subprocess.run(
            ["scripts/backup.sh", *arguments],
            cwd=service,
            env=environment,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1 and result.stdout == "", result.stdout + result.stderr
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: this stack has no media volume: its media files are in an S3 bucket")
        assert line.endswith(f'(README.md, "Media files in S3"){ending}')
        assert calls.read_text().splitlines() == ["compose config --volumes"]


def test_variant_specific_files(render):
    defaults = render("defaults")
    s3 = render("s3-no-proxy-no-beat-sentry")

    assert (defaults / "Caddyfile").is_file()
    assert not (s3 / "Caddyfile").exists()
    assert "django-storages[s3]" in (s3 / "requirements/base.in").read_text()
    assert "django-storages" not in (defaults / "requirements/base.in").read_text()
    assert "sentry-sdk" in (s3 / "requirements/base.in").read_text()
    for lock in ("production.txt", "dev.txt"):
        assert "\nboto3==" in (s3 / "requirements" / lock).read_text()
        assert "\nsentry-sdk==" in (s3 / "requirements" / lock).read_text()
        assert "boto3" not in (defaults / "requirements" / lock).read_text()
        assert "sentry" not in (defaults / "requirements" / lock).read_text()
    s3_package = package_of(answers_for("s3-no-proxy-no-beat-sentry"))
    assert "sentry_sdk" in (s3 / f"src/{s3_package}/settings/production.py").read_text()
    assert "sentry" not in (defaults / f"src/{PACKAGE}/settings/production.py").read_text()
    assert "heartbeat" not in (s3 / f"src/{KIT}/tasks.py").read_text()
    assert "CELERY_BEAT_SCHEDULE" not in (s3 / f"src/{s3_package}/settings/base.py").read_text()
    assert "handle_path /media/*" in (defaults / "Caddyfile").read_text()


def test_explicit_counts_become_the_defaults(render):
    service = render("explicit-workers")
    gunicorn = (service / "gunicorn.conf.py").read_text()
    assert 'env.int("GUNICORN_WORKERS", default=5, minimum=0)' in gunicorn
    assert 'env.int("GUNICORN_THREADS", default=4, minimum=1)' in gunicorn
    base = (service / f"src/{package_of(answers_for('explicit-workers'))}/settings/base.py").read_text()
    assert 'env.int("CELERY_CONCURRENCY", default=3, minimum=0)' in base
    assert "GUNICORN_WORKERS=5" in (service / ".env.example").read_text()


def test_postgres_version_drives_every_image(render):
    for variant, version in [("defaults", "17"), ("python312-postgres16", "16"), ("postgres18-s3-caddy", "18")]:
        service = render(variant)
        official = f"${{POSTGRES_IMAGE:-postgres:{version}}}"
        assert compose(service, "docker-compose.yml")["services"]["db"]["image"] == official
        # Production builds db (and backup) on it: the official image with pgBackRest.
        for name in ("db", "backup"):
            assert compose(service, "docker-compose.prod.yml")["services"][name]["build"]["args"] == {
                "POSTGRES_IMAGE": official
            }
        dockerfile = (service / "docker/postgres/Dockerfile").read_text()
        assert f"ARG POSTGRES_IMAGE=postgres:{version}\nFROM ${{POSTGRES_IMAGE}}\n" in dockerfile
        assert f"image: postgres:{version}" in (service / ".github/workflows/ci.yml").read_text()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_image_is_a_variable_whose_default_is_the_official_image(render, variant):
    """A registry mirror, a pinned digest or the tests' stand-ins are a line
    in .env, never an edit of a template-owned file."""
    service = render(variant)
    answers = answers_for(variant)
    official = {
        "PYTHON_IMAGE": f"python:{python_version_of(answers)}-slim-trixie",
        "POSTGRES_IMAGE": f"postgres:{answers.get('postgres_version', '17')}",
        "REDIS_IMAGE": "redis:7.4",
    }
    caddy = {"CADDY_IMAGE": "caddy:2"} if answers.get("reverse_proxy", "caddy") == "caddy" else {}
    prometheus = {"PROMETHEUS_IMAGE": "prom/prometheus:v3.5.0"}
    # compose_images refuses a service whose image is not such a variable.
    assert compose_images(service / "docker-compose.prod.yml") == official | caddy | prometheus
    assert compose_images(service / "docker-compose.yml") == official
    # Built services get the base image as a build argument, with the Dockerfile's own default.
    dockerfile = (service / "Dockerfile").read_text()
    assert f"ARG PYTHON_IMAGE={official['PYTHON_IMAGE']}\n" in dockerfile
    for name in ("docker-compose.prod.yml", "docker-compose.yml"):
        for spec in compose(service, name)["services"].values():
            if "build" in spec:
                variable = "POSTGRES_IMAGE" if spec["build"]["context"] == "docker/postgres" else "PYTHON_IMAGE"
                assert spec["build"]["args"] == {variable: f"${{{variable}:-{official[variable]}}}"}
    # .env.example lists each, with its default, in its Images block.
    example = (service / ".env.example").read_text()
    block = example.split("# --- Images ", 1)[1].split("\n# --- ", 1)[0]
    assert dict(re.findall(r"^([A-Z_]+_IMAGE)=(.+)$", block, re.M)) == official | caddy | prometheus


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_secret_is_rendered_and_env_stays_out_of_git(render, variant, tmp_path):
    service = tmp_path / "service"
    shutil.copytree(render(variant), service)
    example = (service / ".env.example").read_text()
    for name in ("SECRET_KEY", "POSTGRES_PASSWORD", "EMAIL_URL"):
        assert re.search(rf"^{name}=$", example, re.M), f"{name} must be rendered empty"
    if answers_for(variant).get("media_backend") == "s3":
        assert re.search(r"^AWS_SECRET_ACCESS_KEY=$", example, re.M)
    (service / ".env").write_text(example.replace("SECRET_KEY=\n", "SECRET_KEY=real-secret\n"))
    subprocess.run(["git", "init", "--quiet"], cwd=service, check=True)
    ignored = subprocess.run(["git", "check-ignore", ".env"], cwd=service, capture_output=True, text=True)
    assert ignored.stdout.strip() == ".env"


@pytest.mark.parametrize(
    ("variables", "arguments"),
    [
        (
            ["DATABASE=postgres://old:secret@db:5432/old", "NETWORK=old_default", "MEDIA=/srv/old/media"],
            ["--database", "postgres://old:secret@db:5432/old", "--source-network", "old_default"]
            + ["--media", "/srv/old/media"],
        ),
        (
            ["DUMP=old.dump", "MEDIA_VOLUME=old_media", "FORCE=1"],
            ["--dump", "old.dump", "--media-volume", "old_media", "--force"],
        ),
        (["DUMP=old.dump", "FORCE=0"], ["--dump", "old.dump"]),
    ],
)
def test_make_import_data_passes_its_variables_to_the_script(render, variables, arguments):
    require(shutil.which("make"), "make is not installed")
    command = ["make", "--dry-run", "import-data", *variables]
    result = subprocess.run(command, cwd=render("defaults"), capture_output=True, text=True, check=True)
    assert shlex.split(result.stdout.replace("\\\n", " ")) == ["scripts/import-data.sh", *arguments]
