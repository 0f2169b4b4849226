"""Figure 6: `/health/` throughput over gunicorn's workers × threads, each point
a ratio to the default measured beside it."""

from benchmarks.measure import alternate, log, median, summary, wrk
from benchmarks.results import SweepFigure, SweepPoint
from benchmarks.stack import Stack

DEFAULT_THREADS = 2  # the `web_threads` default


def run(stack: Stack, rounds, seconds, connections, workers_list, threads_list):
    host = stack.domain
    default_url = stack.default_url()
    default_workers = 2 * stack.available_cpus() + 1  # `web_workers=0`

    def measure(name, workers, threads):
        """The point's req/s and the default's, alternately, `rounds` times."""
        process, url = stack.gunicorn(f"sweep-{name}", workers=workers, threads=threads)
        wrk(f"{url}/health/", host, 1, connections)  # warm-up
        runs = alternate(
            rounds,
            default=lambda: wrk(f"{default_url}/health/", host, seconds, connections),
            point=lambda: wrk(f"{url}/health/", host, seconds, connections),
        )
        stack.stop(process)
        point, default = summary(runs["point"], "rps"), summary(runs["default"], "rps")
        log(f"sweep: {name}: {point:.0f} req/s, default alongside {default:.0f} ({point / default:.2f}×)")
        return SweepPoint(workers, threads, rps=point, relative=point / default, default_rps=default)

    points = [
        measure(f"{workers}x{threads}", workers, threads)
        for workers in workers_list
        for threads in threads_list
        if (workers, threads) != (default_workers, DEFAULT_THREADS)
    ]
    default = SweepPoint(
        default_workers, DEFAULT_THREADS, rps=median([point.default_rps for point in points]), relative=1.0
    )
    points.append(default)
    best = max(points, key=lambda point: point.relative)
    best_name = f"{best.workers}x{best.threads}"
    # The highest of a dozen noisy ratios overstates its point (the same
    # point measured twice differs by 10-15 % here): the point picked is
    # measured again, and that second, independent ratio is the figure.
    confirmed = best.relative if best is default else measure(f"{best_name}-again", best.workers, best.threads).relative
    return [
        SweepFigure(
            key="sweep",
            title=f"`/health/` req/s over workers {workers_list} × threads {threads_list}",
            compared_with=f"the default `web_workers=0`: {default_workers} workers × {DEFAULT_THREADS} threads",
            value=f"best {best_name} at {best.relative:.2f}× the default; measured again: {confirmed:.2f}×",
            ratio=1 / max(confirmed, 1.0),
            target="default ≥ 0.9× the best point",
            met=1 / max(confirmed, 1.0) >= 0.9,
            samples={"best_again": confirmed},
            points=points,
        )
    ]
