"""Figure 12: restoring a database of about 1 GB, pgBackRest against pg_restore.

The default service's production stack, on the engine of the container
tests. pgbench fills the database; one full backup
(`pgbackrest backup`) and one `pg_dump -Fc` are taken of the same data. Then,
alternating:
  A. the database volume is deleted and pgBackRest restores it (`restore`
     into the empty volume, then db starts and ends its recovery: the time
     until the database takes writes again);
  B. `pg_restore` loads the dump into the empty database of a new server of
     the same image (the stack's throw-away `verify` service with the image's
     own entrypoint): tables, then indexes and constraints.
Both use one process, their defaults.

Figure 13, the cost of backing up for the writes: pgbench's TPC-B-like
transactions (writes to four tables) for WRITE_SECONDS, on the stack's db
(archiving every segment) while a full backup runs, against the same
pgbench on a server of the same image and data without archiving or backup.

Figure 14, the cost for the requests: `/ready/` (a query to PostgreSQL and a
ping to Redis per request) requests/s from 4 keep-alive clients in the web
container while a full backup runs, against the same with no backup.

Figure 15, the data-loss window: a client commits a row every 0.2 s; the db
container is killed at a random moment and its volume deleted; pgBackRest
restores the latest state. The window is the time between the kill and the
last commit that came back, with the default BACKUP_MAX_DATA_LOSS_SECONDS.
"""

import re
import secrets
import subprocess
import threading
import time

from copier import run_copy

from benchmarks.measure import alternate, log, median
from benchmarks.results import Figure, bounded
from harness.answers import ROOT
from harness.docker import docker, image_values, stack_images
from harness.stack import ComposeProject, build, compose_files, env_file, stack_values

# pgbench's scale: about 15 MB of tables and indexes per unit.
SCALE = 66
DUMP = "/var/lib/pgbackrest/benchmark.dump"  # in the repository, on the host
LOSS_SECONDS = 60  # the default BACKUP_MAX_DATA_LOSS_SECONDS: a client writes for 1 to 2 times this
WRITE_SECONDS = 15  # a full backup of the 1 GB takes about as long here
READY_SECONDS = 8  # about a full backup of the 1 GB here
# Run by `python -` in the web container: /ready/ requests/s from 4 keep-alive
# clients, as the load balancer sends them (the public host, HTTPS said in a header).
READY_LOAD = """
import http.client, sys, threading, time
host, seconds, done = sys.argv[1], float(sys.argv[2]), []
def client():
    connection, count, end = http.client.HTTPConnection("127.0.0.1", 8000, timeout=10), 0, time.monotonic() + seconds
    while time.monotonic() < end:
        connection.request("GET", "/ready/", headers={"Host": host, "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        response.read()
        count += response.status == 200
    done.append(count)
clients = [threading.Thread(target=client) for _ in range(4)]
for thread in clients:
    thread.start()
for thread in clients:
    thread.join()
print(sum(done) / seconds)
"""
PGBENCH = 'pgbench --client=4 --jobs=2 --time={seconds} --username="$POSTGRES_USER" "$POSTGRES_DB"'


def run(work, rounds, answers):
    service = work / "service"
    log("backup: rendering the default service and building its db image")
    run_copy(str(ROOT), service, data=answers, defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
    images = image_values(stack_images(service / "docker-compose.prod.yml"))
    suffix = secrets.token_hex(3)
    tag, db_tag = f"template-bench-{suffix}:latest", f"template-bench-db-{suffix}:latest"
    env_file(service, stack_values(tag, DB_IMAGE=db_tag, **images))
    project = ComposeProject(service, "bench-backup", compose_files(service))
    volume = f"{project.project}_postgres-data"

    def psql(query, container_service="db"):
        command = 'psql -qtAX --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --command="$0"'
        return project.exec(container_service, "sh", "-c", command, query).strip()

    def backup_run(*command, timeout=3600):
        return project.compose("run", "--rm", "--no-deps", "-T", "backup", *command, timeout=timeout)

    def pgbackrest_restore():
        project.compose("rm", "--stop", "--force", "db", "backup")
        docker("volume", "rm", volume)
        started = time.monotonic()
        backup_run("pgbackrest", "restore")
        project.compose("up", "--detach", "--wait", "db", timeout=3600)
        while psql("select pg_is_in_recovery()") != "f":
            time.sleep(0.2)
        seconds = time.monotonic() - started
        # As after the operator's restore: backup runs again beside db.
        project.compose("up", "--detach", "--wait", "backup", timeout=600)
        return seconds

    def plain_server():
        """A new server of the db image, archiving off (the image's defaults), ready; its container ID."""
        container = project.compose(
            "run", "--detach", "--no-deps", "--env=POSTGRES_PASSWORD=benchmark", "verify", "postgres"
        ).stdout.strip()
        ready = (
            "pg_isready --quiet --host=/var/run/postgresql"
            ' && psql -qtAX --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --command="select 1"'
        )
        deadline = time.monotonic() + 300
        while docker("exec", container, "sh", "-c", ready, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the plain server did not start")
            time.sleep(0.5)
        return container

    def load_dump(container):
        command = f'pg_restore --exit-on-error --no-owner --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" {DUMP}'
        docker("exec", container, "sh", "-c", command, timeout=3600)

    def pg_restore():
        container = plain_server()
        try:
            started = time.monotonic()
            load_dump(container)
            return time.monotonic() - started
        finally:
            docker("rm", "--force", "--volumes", container, check=False)

    def tps(output):
        return float(re.search(r"^tps = ([\d.]+)", output, re.M).group(1))

    def lost_window():
        """Seconds of acknowledged commits lost to a kill and a lost volume."""
        psql("create table if not exists heartbeat (at timestamptz primary key default clock_timestamp())")
        psql("truncate heartbeat")
        insert = (
            'psql -qtAX --username="$POSTGRES_USER" --dbname="$POSTGRES_DB"'
            ' --command="insert into heartbeat default values returning extract(epoch from at)"'
        )
        (database,) = [container["Id"] for container in project.by_service()["db"]]
        writer = subprocess.Popen(
            ["docker", "exec", database, "sh", "-c", f"while {insert}; do sleep 0.2; done"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            time.sleep(LOSS_SECONDS + secrets.randbelow(LOSS_SECONDS))
            killed = time.time()
            docker("kill", database)
            acknowledged = [float(line) for line in writer.communicate(timeout=60)[0].split()]
        finally:
            writer.kill()
        pgbackrest_restore()
        recovered = float(psql("select extract(epoch from max(at)) from heartbeat"))
        # The client's last lines can be lost with the container: a commit
        # restored may be later than the last one seen, never later than the kill.
        if not acknowledged or recovered > killed:
            raise RuntimeError(f"the last commit restored, at {recovered}, is not one made before the kill")
        return killed - recovered

    backup_durations = []

    def during_a_backup(measure):
        """measure()'s result, while a full backup runs beside it."""
        started = time.monotonic()
        backing_up = subprocess.Popen(
            ["docker", "compose", f"--project-name={project.project}", *(f"--file={f}" for f in project.files),
             "run", "--rm", "--no-deps", "-T", "backup", "pgbackrest", "backup", "--type=full"],
            cwd=service, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        ended = []
        waiter = threading.Thread(target=lambda: ended.append((backing_up.communicate(timeout=3600), time.monotonic())))
        waiter.start()
        try:
            result = measure()
        finally:
            waiter.join()
        (_, errors), finished = ended[0]
        backup_durations.append(finished - started)
        if backing_up.returncode != 0:
            raise RuntimeError(f"the full backup failed: {errors}")
        return result

    def writes():
        return tps(project.exec("db", "sh", "-c", PGBENCH.format(seconds=WRITE_SECONDS), timeout=600))

    def ready():
        web = project.compose("ps", "--quiet", "web").stdout.strip()
        load = docker("exec", "-i", web, "python", "-", answers["domain"], str(READY_SECONDS), input=READY_LOAD)
        return float(load.stdout)

    def writes_without_archiving(container):
        output = docker("exec", container, "sh", "-c", PGBENCH.format(seconds=WRITE_SECONDS), timeout=600).stdout
        return tps(output)

    try:
        build(service, tag, images["PYTHON_IMAGE"])
        project.compose("build", "db", timeout=1800)
        project.up()
        log(f"backup: filling the database (pgbench scale {SCALE})")
        project.exec(
            "db",
            "sh",
            "-c",
            f'pgbench --initialize --quiet --scale={SCALE} --username="$POSTGRES_USER" "$POSTGRES_DB"',
            timeout=3600,
        )
        size = int(psql("select pg_database_size(current_database())"))
        backup_run("pgbackrest", "stanza-create")
        started = time.monotonic()
        backup_run("pgbackrest", "backup", "--type=full")
        backup_seconds = time.monotonic() - started
        started = time.monotonic()
        project.exec(
            "db",
            "sh",
            "-c",
            f'pg_dump --format=custom --username="$POSTGRES_USER" --file={DUMP} "$POSTGRES_DB"',
            timeout=3600,
        )
        dump_seconds = time.monotonic() - started
        dump_size = int(project.exec("db", "stat", "--format=%s", DUMP))
        log(f"backup: {rounds} rounds of pgBackRest restore / pg_restore of {size / 1e9:.2f} GB")
        times = alternate(rounds, pgbackrest=pgbackrest_restore, pg_restore=pg_restore)
        accounts = psql("select count(*) from pgbench_accounts")
        log(f"backup: {rounds} rounds of {WRITE_SECONDS} s of pgbench writes, during a full backup / without archiving")
        baseline = plain_server()
        try:
            load_dump(baseline)
            write_rates = alternate(
                rounds, backup=lambda: during_a_backup(writes), plain=lambda: writes_without_archiving(baseline)
            )
        finally:
            docker("rm", "--force", "--volumes", baseline, check=False)
        log(f"backup: {rounds} rounds of {READY_SECONDS} s of /ready/ requests, during a full backup / alone")
        project.compose("up", "--detach", "--wait", timeout=600)  # backup again, web reconnected to the restored db
        ready_rates = alternate(rounds, backup=lambda: during_a_backup(ready), idle=ready)
        log(f"backup: {rounds} rounds of commits until a kill, the volume lost, the latest state restored")
        losses = [lost_window() for _ in range(rounds)]
    finally:
        project.compose("--profile=tools", "down", "--volumes", "--timeout=30", check=False)
        docker("rmi", tag, db_tag, check=False)
    assert int(accounts) == SCALE * 100_000, accounts  # the restored data is all there
    tool, dump = median(times["pgbackrest"]), median(times["pg_restore"])
    return [
        Figure(
            key="restore",
            title=f"restore of a {size / 1e9:.1f} GB database (pgbench) into an empty volume, until it takes writes",
            compared_with="`pg_restore` of a `pg_dump -Fc` of the same data into an empty database",
            value=f"pgBackRest {tool:.0f} s vs pg_restore {dump:.0f} s (backup took {backup_seconds:.0f} s, "
            f"the dump {dump_seconds:.0f} s, {dump_size / 1e6:.0f} MB)",
            **bounded(tool / dump, at_most=1.5),
            samples={"pgbackrest": times["pgbackrest"], "pg_restore": times["pg_restore"], "database_bytes": size},
        ),
        Figure(
            key="backup-writes",
            title=f"write transactions/s (pgbench TPC-B-like, 4 clients, {WRITE_SECONDS} s) with WAL archiving "
            "and a full backup running",
            compared_with="the same pgbench on a server of the same image and data, without archiving or backup",
            value=f"{median(write_rates['backup']):.0f} vs {median(write_rates['plain']):.0f} tps "
            f"(the backup ran for {median(backup_durations[:rounds]):.0f} s of the {WRITE_SECONDS})",
            **bounded(median(write_rates["backup"]) / median(write_rates["plain"]), at_least=0.8),
            samples=write_rates | {"backup_seconds": backup_durations[:rounds]},
        ),
        Figure(
            key="backup-ready",
            title=f"`/ready/` requests/s (4 keep-alive clients in the web container, {READY_SECONDS} s) "
            "with a full backup running",
            compared_with="the same requests with no backup running",
            value=f"{median(ready_rates['backup']):.0f} vs {median(ready_rates['idle']):.0f} req/s "
            f"(the backup ran for {median(backup_durations[rounds:]):.0f} s of the {READY_SECONDS})",
            **bounded(median(ready_rates["backup"]) / median(ready_rates["idle"]), at_least=0.8),
            samples=ready_rates | {"backup_seconds": backup_durations[rounds:]},
        ),
        Figure(
            key="loss",
            title="committed data lost when the db container is killed and its volume deleted, "
            "then the latest state restored (a commit every 0.2 s)",
            compared_with=f"the bound, `BACKUP_MAX_DATA_LOSS_SECONDS` (default {LOSS_SECONDS} s)",
            value=f"the last {median(losses):.0f} s (worst of {rounds}: {max(losses):.0f} s)",
            **bounded(max(losses) / LOSS_SECONDS, at_most=1),
            samples={"lost_seconds": losses},
        ),
    ]
