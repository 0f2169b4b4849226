"""results.md: the figures of a run as a table, and the sweep as a grid."""

from benchmarks.results import Run, SweepFigure

ORDER = [
    "copy",
    "update",
    "health",
    "ready",
    "static",
    "sweep",
    "celery",
    "memory",
    "observability-health",
    "observability-query",
    "observability-memory",
    "rebuild",
    "image",
    "install",
    "dependency-rebuild",
    "up",
    "restore",
    "backup-writes",
    "backup-ready",
    "loss",
]
MET = {True: "yes", False: "**no**", None: "—"}


def markdown(run: Run):
    head = (
        f"Measured {run.date} on {run.machine}, by `python3 scripts/bench.py`: "
        f"medians of {run.rounds} alternating runs (A B A B …); web figures with wrk, "
        f"{run.connections} connections, {run.seconds} s per run."
    )
    if run.docker_rounds:
        head += f" Image and stack figures: medians of {run.docker_rounds} runs."
    if run.what_if:
        head += f" **What-if run: {run.what_if}.**"
    lines = [
        head,
        "",
        "| figure | compared with, in the same run | result | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in sorted(run.figures, key=lambda figure: ORDER.index(figure.key)):
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}×"
        lines.append(f"| {f.title} | {f.compared_with} | {f.value} | {ratio} | {f.target} | {MET[f.met]} |")
    for group, reason in run.skipped.items():
        lines.append(f"| {group} figures | — | not measured: {reason} | | | |")
    lines.append("")
    for sweep in (f for f in run.figures if isinstance(f, SweepFigure)):
        lines += ["`/health/` throughput relative to the default, measured alongside it:", "", *sweep_grid(sweep), ""]
    return "\n".join(lines)


def sweep_grid(sweep: SweepFigure):
    points = {(point.workers, point.threads): point for point in sweep.points}
    threads = sorted({t for _, t in points})
    rows = ["| workers \\ threads | " + " | ".join(map(str, threads)) + " |", "|---|" + "---|" * len(threads)]
    for workers in sorted({w for w, _ in points}):
        cells = []
        for t in threads:
            point = points.get((workers, t))
            if point is None:
                cells.append("")
            else:
                cells.append(f"{point.relative:.2f}×" + (" (default)" if point.default_rps is None else ""))
        rows.append(f"| {workers} | " + " | ".join(cells) + " |")
    return rows
