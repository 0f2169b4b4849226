"""The rendered service runs: its own checks, real PostgreSQL, Redis, gunicorn,
Celery and S3-compatible storage."""

import json
import os
import re
import signal
import uuid

import boto3
import pytest

from harness.answers import DOMAIN, KIT, answers_for
from harness.answers import VARIANTS as VARIANTS_ALL
from harness.servers import PostgresServer, RedisServer, free_port
from harness.service import http_get, log_of, prepare_service, variant_service, wait_for

pytestmark = pytest.mark.service

VARIANTS = ["defaults", "s3-no-proxy-no-beat-sentry"]


@pytest.fixture(scope="module", params=VARIANTS)
def service(request, render, tmp_path_factory):
    yield from variant_service(render, tmp_path_factory, request.param)


def is_s3(service):
    return service.answers.get("media_backend") == "s3"


def has_beat(service):
    return service.answers.get("use_celery_beat", True)


def fresh_database(postgres_server):
    return postgres_server.create_database(f"test_{uuid.uuid4().hex[:12]}")


def test_own_suite_passes_without_services(service):
    result = service.run(service.bin / "pytest", "-q", "-p", "no:cacheprovider")
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_own_suite_passes_on_postgres_and_redis(service, postgres_server, redis_server):
    env = service.env(DATABASE_URL=fresh_database(postgres_server), REDIS_URL=redis_server.url)
    result = service.run(service.bin / "pytest", "-q", "-p", "no:cacheprovider", env=env)
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_deployment_checks_pass_with_zero_issues(service, postgres_server, redis_server):
    env = service.production_env(postgres_server.url, redis_server.url)
    result = service.manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    assert result.stderr.strip() == ""


def test_production_reads_its_secrets_from_files(service, postgres_server, redis_server, tmp_path):
    # As Docker and Kubernetes secrets arrive: one file each, the variable
    # NAME_FILE naming it, NAME itself unset.
    env = service.production_env(postgres_server.url, redis_server.url)
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL"):
        (tmp_path / name).write_text(env.pop(name) + "\n")
        env[f"{name}_FILE"] = str(tmp_path / name)
    result = service.manage("check", "--deploy", "--fail-level", "WARNING", "--database", "default", env=env)
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."

    # Both set: start-up stops, naming them, and shows neither value.
    env["SECRET_KEY"] = (tmp_path / "SECRET_KEY").read_text().strip()
    refused = service.manage("check", env=env, check=False)
    assert refused.returncode != 0
    assert "Set SECRET_KEY or SECRET_KEY_FILE, not both" in refused.stderr
    assert env["SECRET_KEY"] not in refused.stderr


def test_models_and_migrations_agree(service):
    result = service.manage("makemigrations", "--check", "--dry-run")
    assert "No changes detected" in result.stdout


def test_collectstatic_with_production_settings(service, tmp_path):
    env = service.production_env("postgres://build@localhost/build", "redis://localhost:6379/0", STATIC_ROOT=tmp_path)
    service.manage("collectstatic", "--noinput", env=env)
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())
    hashed = manifest["paths"]["admin/css/base.css"]
    assert hashed != "admin/css/base.css"
    assert (tmp_path / hashed).is_file()
    assert (tmp_path / f"{hashed}.gz").is_file()


def test_migrations_apply_on_postgres_and_the_check_script_sees_it(service, postgres_server, redis_server):
    env = service.production_env(fresh_database(postgres_server), redis_server.url)
    check = [service.path / "scripts/check_migrations.sh"]

    before = service.run(*check, env=env, check=False)
    service.manage("migrate", "--noinput", env=env)
    after = service.run(*check, env=env, check=False)

    assert before.returncode != 0, before.stdout
    assert after.returncode == 0, after.stdout + after.stderr
    tables = postgres_server.psql(
        "SELECT count(*) FROM django_migrations", database=env["DATABASE_URL"].rsplit("/", 1)[1]
    )
    assert int(tables.strip()) > 10


def test_the_new_code_waits_for_its_migrations_then_starts(service, postgres_server, redis_server, tmp_path):
    """scripts/wait_for_migrations.sh, which the Swarm and Kubernetes
    containers start through: the command runs only once migrate is done."""
    env = service.production_env(fresh_database(postgres_server), redis_server.url, MIGRATIONS_WAIT_SECONDS="120")
    started = tmp_path / "started"
    waiting = service.start(
        service.path / "scripts/wait_for_migrations.sh", "touch", started, env=env, log_name="wait-for-migrations"
    )
    wait_for(lambda: "Waiting for the migrations" in log_of(waiting), message="the wait to begin")
    assert waiting.poll() is None and not started.exists()

    service.manage("migrate", "--noinput", env=env)
    wait_for(lambda: waiting.poll() is not None, timeout=60, message="the wait to end")
    assert waiting.returncode == 0, log_of(waiting)
    assert started.exists()
    assert "Every migration is applied." in log_of(waiting)

    # Migrations that never come: the wait ends, naming the first missing.
    env = {**env, "DATABASE_URL": fresh_database(postgres_server), "MIGRATIONS_WAIT_SECONDS": "1"}
    given_up = service.run(
        service.path / "scripts/wait_for_migrations.sh", "touch", tmp_path / "never", env=env, check=False
    )
    assert given_up.returncode == 1
    assert "were not applied within 1 s (MIGRATIONS_WAIT_SECONDS)" in given_up.stderr
    assert re.search(r"^\[ \]  \w+\.0001_initial$", given_up.stderr, re.MULTILINE), given_up.stderr
    assert not (tmp_path / "never").exists()


def test_development_runs_with_no_services(service):
    env = service.env()
    migrated = service.manage("migrate", "--noinput", env=env)
    notices = [line for line in migrated.stderr.splitlines() if "Development settings" in line]
    assert notices == ["Development settings without services: SQLite database, in-memory cache, tasks run eagerly."]

    port = free_port()
    server = service.start(
        service.bin / "python", "src/manage.py", "runserver", "--noreload", f"127.0.0.1:{port}", log_name="runserver"
    )
    status, _, body = wait_for(lambda: http_get(f"http://127.0.0.1:{port}/admin/login/"), message="runserver")
    assert status == 200, log_of(server)
    assert b"Django administration" in body
    assert http_get(f"http://127.0.0.1:{port}/ready/")[0] == 200


def test_gunicorn_with_its_config_serves_probes_that_follow_the_database(service, redis_server, tmp_path):
    port = free_port()
    with PostgresServer() as postgres:
        env = service.production_env(
            postgres.create_database("app"),
            redis_server.url,
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS=2,
            GUNICORN_CONTROL_SOCKET=tmp_path / "gunicorn.ctl",
        )
        service.manage("migrate", "--noinput", env=env)
        service.manage("collectstatic", "--noinput", env=env)
        gunicorn = service.start(service.bin / "gunicorn", "--config", "gunicorn.conf.py", env=env, log_name="gunicorn")
        base = f"http://127.0.0.1:{port}"

        status, _, body = wait_for(lambda: http_get(f"{base}/health/", host="localhost"), message="gunicorn")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        log = log_of(gunicorn)
        assert "Using worker: gthread" in log  # the config's worker class, not the default
        assert "Failed to start control socket" not in log
        wait_for((tmp_path / "gunicorn.ctl").exists, timeout=10, message="the control socket")
        assert log.count("Booting worker with pid") == 2
        assert http_get(f"{base}/ready/", host="localhost")[0] == 200

        # The site itself redirects plain HTTP to HTTPS and refuses unknown hosts.
        status, headers, _ = http_get(f"{base}/admin/login/", host=DOMAIN)
        assert (status, headers["Location"]) == (301, f"https://{DOMAIN}/admin/login/")
        assert http_get(f"{base}/admin/login/", host="attacker.example.com")[0] == 400

        postgres.stop()
        status, _, body = wait_for(
            lambda: (response := http_get(f"{base}/ready/", host="localhost"))[0] == 503 and response,
            timeout=15,
            message="/ready/ to fail",
        )
        assert json.loads(body) == {"status": "unavailable", "failed": ["database"]}
        assert http_get(f"{base}/health/", host="localhost")[0] == 200

        postgres.start()
        wait_for(lambda: http_get(f"{base}/ready/", host="localhost")[0] == 200, timeout=15, message="/ready/ again")
        assert gunicorn.poll() is None

        assert service.stop(gunicorn, signal.SIGTERM) == 0


def test_gunicorn_config_sizes_workers_from_the_cpus_and_rejects_bad_values(service):
    # HOME unusable, as under a read-only root: the control socket must not need it.
    env = service.env(HOME="/nonexistent")
    printed = service.run(service.bin / "gunicorn", "--config", "gunicorn.conf.py", "--print-config", env=env)
    config = {
        key.strip(): value.strip()
        for key, _, value in (line.partition("=") for line in printed.stdout.splitlines())
        if value
    }
    cpus = int(service.python(f"from {KIT}.resources import available_cpus; print(available_cpus())").stdout)
    assert int(config["workers"]) == 2 * cpus + 1
    assert config["threads"] == "2"
    assert config["worker_class"] == "gthread"
    slug = service.answers.get("project_slug", "obc-management-system")
    assert config["control_socket"] == f"/dev/shm/{slug}-gunicorn.ctl"
    assert config["worker_tmp_dir"] == "/dev/shm"

    for variable, value, message in [
        ("GUNICORN_WORKERS", "abc", "GUNICORN_WORKERS must be a whole number, got 'abc'."),
        ("GUNICORN_TIMEOUT", "-5", "GUNICORN_TIMEOUT must be at least 1, got -5."),
        ("GUNICORN_THREADS", "0", "GUNICORN_THREADS must be at least 1, got 0."),
    ]:
        rejected = service.run(
            service.bin / "gunicorn",
            "--config",
            "gunicorn.conf.py",
            "--print-config",
            env=service.env(**{variable: value}),
            check=False,
        )
        assert rejected.returncode != 0
        assert message in rejected.stderr


def start_beat(service, env, schedule, log_name="beat"):
    return service.start(
        service.bin / "celery",
        f"--app={service.package}",
        "beat",
        "--loglevel=INFO",
        f"--schedule={schedule}",
        env=env,
        log_name=log_name,
    )


def test_celery_worker_runs_the_example_task_over_redis(service, postgres_server, redis_server, tmp_path):
    alive = tmp_path / "worker.alive"
    env = service.production_env(postgres_server.url, redis_server.url, CELERY_WORKER_ALIVE_FILE=alive)
    worker = service.start_worker(env, "--concurrency=1")

    wait_for(alive.exists, timeout=60, message="the worker's alive file")
    assert service.run(service.path / "scripts/check_alive.sh", alive, 60, check=False).returncode == 0
    result = service.python(
        f"import django; django.setup(); from {KIT}.tasks import add; print(add.delay(2, 3).get(timeout=60))", env=env
    )
    assert result.stdout.strip() == "5"
    assert f"Task {KIT}.tasks.add" in log_of(worker) and "succeeded" in log_of(worker)

    assert service.stop(worker, signal.SIGTERM) == 0
    assert not alive.exists()


def test_beat_schedules_the_heartbeat_that_a_worker_runs(service, postgres_server, redis_server, tmp_path):
    if not has_beat(service):
        assert "heartbeat" not in (service.path / f"src/{KIT}/tasks.py").read_text()
        return
    beat_alive = tmp_path / "beat.alive"
    env = service.production_env(
        postgres_server.url,
        redis_server.url,
        CELERY_HEARTBEAT_INTERVAL="1",
        CELERY_WORKER_ALIVE_FILE=tmp_path / "worker.alive",
        CELERY_BEAT_ALIVE_FILE=beat_alive,
    )
    service.python("import django; django.setup(); from django.core.cache import cache; cache.clear()", env=env)
    worker = service.start_worker(env, "--concurrency=1")
    beat = start_beat(service, env, tmp_path / "celerybeat-schedule")
    read_heartbeat = (
        "import django; django.setup(); from django.core.cache import cache; print(cache.get('celery:heartbeat'))"
    )
    wait_for(
        lambda: service.python(read_heartbeat, env=env).stdout.strip() != "None",
        timeout=60,
        message="the heartbeat task to run",
    )
    assert beat_alive.exists()
    assert service.run(service.path / "scripts/check_alive.sh", beat_alive, 60, check=False).returncode == 0
    assert service.stop(beat) == 0
    assert service.stop(worker) == 0


def test_media_goes_to_the_configured_storage(service, postgres_server, redis_server, s3_server, tmp_path):
    save = (
        "import django; django.setup(); from django.core.files.base import ContentFile;"
        "from django.core.files.storage import default_storage as s;"
        "name = s.save('uploads/hello.txt', ContentFile(b'hello media')); print(name); print(s.url(name))"
    )
    if not is_s3(service):
        env = service.production_env(postgres_server.url, redis_server.url, MEDIA_ROOT=tmp_path)
        name, url = service.python(save, env=env).stdout.split()
        assert (tmp_path / name).read_bytes() == b"hello media"
        assert url == f"/media/{name}"
        return

    bucket = f"media-{uuid.uuid4().hex[:8]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
    )
    client.create_bucket(Bucket=bucket)
    env = service.production_env(
        postgres_server.url,
        redis_server.url,
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_ACCESS_KEY_ID=s3_server.access_key,
        AWS_SECRET_ACCESS_KEY=s3_server.secret_key,
        AWS_S3_REGION_NAME=s3_server.region,
    )
    name, url = service.python(save, env=env).stdout.split()

    assert client.get_object(Bucket=bucket, Key=name)["Body"].read() == b"hello media"
    assert url.startswith(f"{s3_server.endpoint_url}/{bucket}/{name}?")
    assert "Signature" in url or "X-Amz-Signature" in url


@pytest.mark.parametrize("variant", [name for name in VARIANTS_ALL if name not in VARIANTS])
def test_deployment_checks_pass_for_the_other_variants(render, variant, tmp_path):
    service = prepare_service(render(variant), tmp_path / "service", answers_for(variant))
    env = service.production_env("postgres://app:password@db:5432/app", "redis://redis:6379/0")
    result = service.manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    assert " passed" in service.run(service.bin / "pytest", "-q", "-p", "no:cacheprovider").stdout


def test_beat_stops_cleanly_while_its_broker_hangs(service, postgres_server, tmp_path):
    if not has_beat(service):
        return
    with RedisServer() as redis:
        env = service.production_env(
            postgres_server.url,
            redis.url,
            CELERY_HEARTBEAT_INTERVAL="1",
            CELERY_BEAT_ALIVE_FILE=tmp_path / "beat.alive",
        )
        beat = start_beat(service, env, tmp_path / "celerybeat-schedule", log_name="beat-hung-broker")
        wait_for(lambda: "Sending due task heartbeat" in log_of(beat), timeout=30, message="beat to send")
        sent = log_of(beat).count("Sending due task heartbeat")
        os.kill(redis.process.pid, signal.SIGSTOP)  # Redis accepts nothing and answers nothing
        try:
            # Beat's next send goes to the hung broker: beat is stuck in it.
            wait_for(
                lambda: log_of(beat).count("Sending due task heartbeat") > sent,
                timeout=30,
                message="beat to send to the hung broker",
            )
            assert service.stop(beat, signal.SIGTERM, timeout=30) == 0, log_of(beat)[-3000:]
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
