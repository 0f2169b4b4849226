"""What a benchmark run measured, as written to results.json."""

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    """A row of the results table: a measurement and the baseline measured beside it."""

    key: str  # a stable name, which orders the table: copy, update, health, ...
    title: str
    compared_with: str
    value: str  # the measurements behind the ratio, as a reader wants them
    target: str
    ratio: float | None = None
    met: bool | None = None  # None: reported, with no pass mark
    samples: dict[str, Any] = field(default_factory=dict)  # every sample and detail


def bounded(ratio, *, at_most=None, at_least=None):
    """The ratio, target and met of a figure whose pass mark bounds its ratio."""
    if at_most is not None:
        return {"ratio": ratio, "target": f"≤ {at_most:g}×", "met": ratio <= at_most}
    return {"ratio": ratio, "target": f"≥ {at_least:g}×", "met": ratio >= at_least}


@dataclass
class SweepPoint:
    workers: int
    threads: int
    rps: float
    relative: float  # to the default's requests/s measured beside it
    default_rps: float | None = None  # None for the default itself


@dataclass
class SweepFigure(Figure):
    points: list[SweepPoint] = field(default_factory=list)


@dataclass
class Run:
    """The conditions of a run and its figures."""

    date: str
    machine: str
    rounds: int
    seconds: int
    connections: int
    docker_rounds: int | None = None
    what_if: str | None = None  # a setting that is not the rendered default
    skipped: dict[str, str] = field(default_factory=dict)  # group: why it was not measured
    total_seconds: int | None = None
    figures: list[Figure] = field(default_factory=list)

    def to_json(self):
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"
