"""Benchmark the template and the service it renders: python3 scripts/bench.py [options]

Needs what the test suite needs (Python 3.11+, git; Python 3.13 for the
rendered service), plus the `wrk` HTTP load generator for the web figures
(Debian/Ubuntu: `apt-get install wrk`; macOS: `brew install wrk`) and a
Docker engine with Compose v2 for the image and stack figures (as the
container tests; tests/offline/install-docker.sh sets one up). A group whose tool is
missing is left out, saying why. Writes benchmarks/results.md and
benchmarks/results.json.

The machine is assumed to be shared and noisy: every comparison is a ratio of
two things measured side by side in the same run, alternating A B A B ...,
and every figure is a median. Benchmarks print; they never fail on a timing.

    python3 scripts/bench.py                 # everything (about 30 minutes on 2 cores)
    python3 scripts/bench.py --only copier   # some groups: copier, web, sweep, memory, observability,
                                             # celery, docker, builds, backup
    python3 scripts/bench.py --rounds 3      # fewer alternations (faster, noisier)
"""

import argparse
import os
import platform
import signal
import tempfile
import time
from pathlib import Path

from benchmarks import backup, builds, celery, copier, docker, memory, observability, sweep, web
from benchmarks.measure import log, wrk_problem
from benchmarks.report import markdown
from benchmarks.results import Run
from benchmarks.stack import Stack
from harness.answers import REQUIRED_ANSWERS
from harness.docker import engine_problem

GROUPS = ["copier", "web", "sweep", "memory", "observability", "celery", "docker", "builds", "backup"]
STACK_GROUPS = {"web", "sweep", "memory", "observability", "celery"}  # on the rendered service, run here
WRK_GROUPS = {"web", "sweep", "memory", "observability"}
HERE = Path(__file__).resolve().parent

# The commits of the benchmark's throwaway repositories need an author; one
# the user has set (GIT_AUTHOR_NAME ...) is kept.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.org",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.org",
}


def arguments():
    parser = argparse.ArgumentParser(
        prog="scripts/bench.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups: " + ", ".join(GROUPS))
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs per comparison")
    parser.add_argument("--seconds", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections for throughput")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=10000, help="requests for the memory figure")
    parser.add_argument("--workers", default="1,3,5,9")
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument(
        "--out", type=Path, default=HERE, help="directory for the results (relative to the repository root)"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help="what-if: GUNICORN_MAX_REQUESTS for the service's gunicorns (default: the rendered one)",
    )
    args = parser.parse_args()
    args.groups = args.only.split(",")
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")
    return args


def measure(args, run):
    """Runs the selected groups whose tools are present; adds their figures to run."""
    groups = [group for group in args.groups if group not in run.skipped]
    overrides = {}
    if args.max_requests is not None:
        overrides["GUNICORN_MAX_REQUESTS"] = str(args.max_requests)
        run.what_if = f"GUNICORN_MAX_REQUESTS={args.max_requests} (not the rendered default)"
    with tempfile.TemporaryDirectory(prefix="template-bench-") as temp:
        work = Path(temp)
        if "copier" in groups:
            (work / "copier").mkdir()
            run.figures += copier.run(work / "copier", args.rounds, REQUIRED_ANSWERS)
        if STACK_GROUPS & set(groups):
            (work / "stack").mkdir()
            with Stack(work / "stack", REQUIRED_ANSWERS, overrides) as stack:
                if "web" in groups:
                    run.figures += web.run(stack, args.rounds, args.seconds, args.connections)
                if "sweep" in groups:
                    workers = [int(w) for w in args.workers.split(",")]
                    threads = [int(t) for t in args.threads.split(",")]
                    # Neighbouring points differ by less than this machine's noise:
                    # the full rounds and run length, like the web figures.
                    run.figures += sweep.run(stack, args.rounds, args.seconds, args.connections, workers, threads)
                if "memory" in groups:
                    run.figures += memory.run(stack, args.requests, args.connections)
                if "observability" in groups:
                    run.figures += observability.run(stack, args.rounds, args.seconds, args.connections, args.requests)
                if "celery" in groups:
                    run.figures += celery.run(stack, max(2, args.rounds - 2), args.tasks)
        if "docker" in groups:
            (work / "docker").mkdir()
            run.docker_rounds = max(2, args.rounds - 2)  # a cold build takes about a minute
            run.figures += docker.run(work / "docker", run.docker_rounds, REQUIRED_ANSWERS)
        if "builds" in groups:
            (work / "builds").mkdir()
            run.docker_rounds = max(2, args.rounds - 2)  # a cold build takes about a minute
            run.figures += builds.run(work / "builds", run.docker_rounds, REQUIRED_ANSWERS)
        if "backup" in groups:
            (work / "backup").mkdir()
            run.docker_rounds = max(2, args.rounds - 2)  # a restore of 1 GB takes about a minute
            run.figures += backup.run(work / "backup", run.docker_rounds, REQUIRED_ANSWERS)


def main():
    args = arguments()
    for name, value in GIT_IDENTITY.items():
        os.environ.setdefault(name, value)
    run = Run(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}",
        rounds=args.rounds,
        seconds=args.seconds,
        connections=args.connections,
    )
    engine_groups = dict.fromkeys(("docker", "builds", "backup"), engine_problem)
    checks = {group: wrk_problem for group in WRK_GROUPS} | engine_groups
    for group in args.groups:
        problem = checks[group]() if group in checks else None
        if problem:
            run.skipped[group] = problem
            log(f"{group}: not measured: {problem}")
    started = time.monotonic()
    measure(args, run)
    run.total_seconds = round(time.monotonic() - started)

    text = markdown(run)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(run.to_json())
    print()
    print(text)
    log(f"done in {run.total_seconds} s; wrote {args.out / 'results.md'} and {args.out / 'results.json'}")


def exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # so that servers and gunicorns are stopped on the way out


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    main()
