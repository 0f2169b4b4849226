"""The suite's fixtures and policies live in the harness package
(tests/harness/plugin.py). It is loaded here rather than with `-p`: a
conftest's plugins are registered after the installed ones, so that its
copier_template_paths wins over pytest-copier's own."""

pytest_plugins = ["harness.plugin"]
