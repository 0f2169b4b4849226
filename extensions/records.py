"""What a service records about the template: where it came from, and which
files the template renders into it.

``absolute_source`` keeps ``_src_path`` in ``.copier-answers.yml`` usable:
copier records the template path as typed, and ``copier update`` (run in the
service's directory) reads a relative one against the wrong directory, then
fails with "Updating is only supported in git-tracked templates".

``template_files`` lists the files this template version renders for the
service's answers, each with its owner, so that the service can tell its own
files from the template's without copier (``scripts/adoption_check.py``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pathspec
import yaml
from jinja2 import pass_context
from jinja2.ext import Extension
from packaging.version import Version
from pathspec import PathSpec

# Template sources that are not paths on this machine: URLs (https://, git+,
# file://), scp-like git addresses (git@host:owner/repo) and copier's gh:/gl:
# shortcuts. A path starting with ~ is expanded by copier wherever it runs.
REMOTE_SOURCE = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:|gh:|gl:|git\+|~)", re.I)
# Files copier never renders from a template (its default exclusions).
NEVER_RENDERED = re.compile(r"(^|/)(__pycache__|\.git|\.svn|\.DS_Store)(/|$)|\.py[co]$|(^|/)~[^/]*$")


def absolute_source(answers):
    """The answers to record, with a local template path made absolute."""
    source = answers.get("_src_path")
    if not source or REMOTE_SOURCE.match(source) or os.path.isabs(source):
        return answers
    return {**answers, "_src_path": os.path.abspath(source)}


def _render(context, text):
    return context.environment.from_string(text).render(context.get_all())


def _project_owned(patterns):
    """Matches paths against _skip_if_exists as copier does (gitignore patterns)."""
    style = "gitignore" if Version(pathspec.__version__) >= Version("1.0.0") else "gitwildmatch"
    return PathSpec.from_lines(style, patterns).match_file


@pass_context
def template_files(context, template_root):
    """(path, owner) of every file the template renders, owner "template" or "project".

    Renders each file name as copier does: the templates' suffix is dropped,
    then each part of the path is Jinja, and a part that renders empty means
    the file is not rendered.
    """
    root = Path(template_root)
    config = yaml.safe_load((root / "copier.yml").read_text())
    suffix = config.get("_templates_suffix", ".jinja")
    source = root / config.get("_subdirectory", "")
    project_owned = _project_owned(_render(context, pattern) for pattern in config.get("_skip_if_exists", []))
    rendered = set()
    for path in source.rglob("*"):
        relative = path.relative_to(source).as_posix()
        if not path.is_file() or NEVER_RENDERED.search(relative):
            continue
        if suffix and not relative.endswith(suffix) and path.with_name(path.name + suffix).exists():
            continue  # copier renders the templated sibling instead
        if suffix:
            relative = relative.removesuffix(suffix)
        parts = [_render(context, part) for part in relative.split("/")]
        if all(parts):
            rendered.add("/".join(parts))
    return [(name, "project" if project_owned(name) else "template") for name in sorted(rendered)]


class ServiceRecords(Extension):
    """Registers the filters above with copier's Jinja environment."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters.update(absolute_source=absolute_source, template_files=template_files)
