"""copier's interactive prompt, driven through a pseudo-terminal as a person
would answer it: what is offered, what is refused and asked again, and a
complete render from typed answers."""

import os
import re
import sys
from pathlib import Path

import pexpect
import pytest
import yaml

from harness.answers import DOMAIN, ROOT

COPIER = str(Path(sys.executable).parent / "copier")
# Keys as a terminal sends them.
DOWN, UP, ENTER = "\x1b[B", "\x1b[A", "\r"
# Ctrl-U: clears the pre-filled default of a text question.
CLEAR = "\x15"
# What copier's prompt asks, by question: the start of its help text.
QUESTIONS = {
    key: question.get("help", key).split("(")[0].strip()
    for key, question in yaml.safe_load((ROOT / "copier.yml").read_text()).items()
    if not key.startswith("_")
}


class Prompt:
    """copier copy run in a pseudo-terminal."""

    def __init__(self, template, dst):
        self.dst = dst
        self.child = pexpect.spawn(
            COPIER,
            ["copy", "--trust", str(template), str(dst)],
            env={**os.environ, "TERM": "xterm", "NO_COLOR": "1"},
            encoding="utf-8",
            timeout=60,
            # Wide enough that no choice or message is wrapped.
            dimensions=(50, 400),
        )

    def asked(self, key):
        """Waits until the question is on the screen."""
        self.child.expect_exact(QUESTIONS[key])

    def answer(self, key, keys):
        self.asked(key)
        self.child.send(keys)

    def type(self, key, text):
        """Replaces the pre-filled default of a text question with text."""
        self.answer(key, CLEAR + text + ENTER)

    def screen_until(self, text):
        """What was shown (escape sequences removed) until text appears."""
        self.child.expect_exact(text)
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.child.before + self.child.after)

    def finish(self):
        """Accepts the default of any question left (later ones included) and waits for the render."""
        left = [QUESTIONS[key] for key in list(QUESTIONS)[list(QUESTIONS).index("use_sentry") + 1 :]]
        while left:
            found = self.child.expect_exact([*left, pexpect.EOF], timeout=120)
            if found == len(left):
                break
            left.pop(found)
            self.child.send(ENTER)
        self.child.expect(pexpect.EOF, timeout=300)
        self.child.close()
        assert self.child.exitstatus == 0, self.child.before
        return yaml.safe_load((self.dst / ".copier-answers.yml").read_text())

    def close(self):
        self.child.close(force=True)


@pytest.fixture
def prompt(copier_template, tmp_path):
    started = []

    def start():
        started.append(Prompt(copier_template, tmp_path / "service"))
        return started[-1]

    yield start
    for each in started:
        each.close()


def answer_up_to_media(prompt, name="Orders"):
    prompt.type("project_name", name)
    for key in ["project_slug", "package_name", "description", "author_name", "author_email"]:
        prompt.answer(key, ENTER)
    prompt.type("domain", DOMAIN)


def accept_the_rest(prompt, after):
    keys = list(QUESTIONS)
    for key in keys[keys.index(after) + 1 : keys.index("use_sentry") + 1]:
        prompt.answer(key, ENTER)


def test_no_proxy_is_not_offered_with_local_media(prompt):
    session = prompt()
    answer_up_to_media(session)
    session.answer("media_backend", ENTER)  # local, the default

    session.asked("reverse_proxy")
    # The choice is shown, disabled, with the reason; the cursor skips it.
    shown = session.screen_until("or media_backend 's3')")
    assert (
        "- None (an external load balancer terminates TLS) (local media files are served by the bundled proxy: "
        "choose reverse_proxy 'caddy', or media_backend 's3')"
    ) in shown
    session.child.send(DOWN + ENTER)
    accept_the_rest(session, "reverse_proxy")

    answers = session.finish()
    assert (answers["media_backend"], answers["reverse_proxy"]) == ("local", "caddy")


def test_no_proxy_can_be_chosen_with_s3_media(prompt):
    session = prompt()
    answer_up_to_media(session)
    session.answer("media_backend", DOWN + ENTER)
    session.answer("reverse_proxy", DOWN + ENTER)
    accept_the_rest(session, "reverse_proxy")

    answers = session.finish()
    assert (answers["media_backend"], answers["reverse_proxy"]) == ("s3", "none")
    assert not (session.dst / "Caddyfile").exists()


def test_a_count_that_is_not_a_number_is_asked_again_saying_what_is_expected(prompt):
    session = prompt()
    answer_up_to_media(session)
    session.answer("media_backend", ENTER)
    session.answer("reverse_proxy", ENTER)

    session.type("web_workers", "four")
    shown = session.screen_until("got 'four'.")
    assert "web_workers must be a whole number from 0 to 64 (0 computes it from the CPUs), got 'four'." in shown
    assert "Invalid input" not in shown
    session.child.send(CLEAR + "3" + ENTER)
    accept_the_rest(session, "web_workers")

    answers = session.finish()
    assert answers["web_workers"] == "3"
    assert 'env.int("GUNICORN_WORKERS", default=3, minimum=0)' in (session.dst / "gunicorn.conf.py").read_text()


def test_a_name_without_latin_letters_asks_for_the_slug(prompt):
    # An invalid derived default would end the prompt: the slug has none.
    session = prompt()
    session.type("project_name", "日本語")
    session.answer("project_slug", ENTER)
    assert "project_slug must not be empty" not in session.screen_until("project_slug is required")
    session.child.send("nihongo" + ENTER)
    for key in ["package_name", "description", "author_name", "author_email"]:
        session.answer(key, ENTER)
    session.type("domain", DOMAIN)
    accept_the_rest(session, "domain")

    answers = session.finish()
    names = (answers["project_name"], answers["project_slug"], answers["package_name"])
    assert names == ("日本語", "nihongo", "nihongo")


def test_every_question_answered_through_the_prompt(prompt):
    session = prompt()
    session.type("project_name", "Women's Health Registry")
    session.type("project_slug", "whr")
    session.type("package_name", "health_registry")
    session.type("description", 'The "Orders" service')
    session.type("author_name", "O'Brien & Co.")
    session.type("author_email", "team@example.org")
    session.type("domain", DOMAIN)
    session.answer("media_backend", DOWN + ENTER)
    session.answer("reverse_proxy", DOWN + ENTER)
    session.type("web_workers", "5")
    session.type("web_threads", "4")
    session.type("celery_concurrency", "3")
    session.answer("use_celery_beat", "n")
    session.answer("python_version", UP + ENTER)
    session.answer("postgres_version", UP + ENTER)
    session.answer("use_sentry", "y")

    answers = session.finish()
    assert {key: answers[key] for key in list(QUESTIONS)[: list(QUESTIONS).index("use_sentry") + 1]} == {
        "project_name": "Women's Health Registry",
        "project_slug": "whr",
        "package_name": "health_registry",
        "description": 'The "Orders" service',
        "author_name": "O'Brien & Co.",
        "author_email": "team@example.org",
        "domain": DOMAIN,
        "media_backend": "s3",
        "reverse_proxy": "none",
        "web_workers": "5",
        "web_threads": "4",
        "celery_concurrency": "3",
        "use_celery_beat": False,
        "python_version": "3.12",
        "postgres_version": "16",
        "use_sentry": True,
    }
    assert (session.dst / "src/health_registry/settings/production.py").is_file()
    assert (session.dst / "README.md").read_text().startswith('# Women\'s Health Registry\n\nThe "Orders" service\n')
