"""Benchmarks of the template and of the service it renders.

`python3 scripts/bench.py [options]` makes .venv and runs `python -m
benchmarks [options]` in it, from the repository root. A module per group of
figures (copier, web, sweep, memory, celery, docker), each returning
`results.Figure`s; `report` writes them as results.md. in_service/ holds the
files the rendered service's own processes run. README.md says how each
figure is measured.
"""
