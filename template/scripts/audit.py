#!/usr/bin/env python3
"""The vulnerability gate: fails while a locked package has a known vulnerability.

    make audit        (or: .venv/bin/python scripts/audit.py)

Looks up every package of requirements/production.txt (what the image ships)
and requirements/dev.txt (what development and CI install) in the OSV
database (osv.dev), which gathers the Python advisories of the PyPA database
(PYSEC-...) and of GitHub (GHSA-...), with pip-audit. Only the locked
name==version pairs are looked up: nothing is resolved or installed, so a
lock gives the same answer on every machine. An entry whose environment
marker does not hold for this interpreter (say `; sys_platform == 'win32'`)
is not looked up: run the gate on the platform the image runs, as CI does.

A vulnerability the team has reviewed and accepts for a while (not
reachable from this service, no fixed version yet) goes in
requirements/audit-ignore.toml with the reason and an expiry date. Once the
date has passed the gate fails again, until the entry is reviewed anew (a
later date) or the package is upgraded and the entry removed.

pip-audit reads PIP_AUDIT_OSV_URL: another server answering OSV's query API
(a mirror inside a closed network, or the template's test database) is used
instead of osv.dev when it is set.

Exit status: 0 when every lock is clean; 1 on a vulnerability, an expired or
invalid entry of the ignore file, or a lock that could not be audited (no
pip-audit, no answer from the database).
"""

import argparse
import datetime
import importlib.util
import io
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("requirements/production.txt", "requirements/dev.txt")
IGNORE_FILE = "requirements/audit-ignore.toml"
ENTRY_KEYS = {"id", "reason", "expires"}
EXAMPLE = 'id = "GHSA-xxxx-xxxx-xxxx"\nreason = "why it is accepted"\nexpires = 2027-03-31'


class InvalidIgnoreFile(Exception):
    """The ignore file cannot be trusted: nothing is audited until it is fixed."""


def read_ignore_file(path: Path) -> list[dict]:
    """The entries of the ignore file, each with an id, a reason and an expiry date.

    Every problem is reported at once, so that one run shows all there is to fix."""
    try:
        content = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return []
    except tomllib.TOMLDecodeError as error:
        raise InvalidIgnoreFile(f"{IGNORE_FILE} is not valid TOML: {error}") from error
    if unknown := content.keys() - {"ignore"}:
        raise InvalidIgnoreFile(f"{IGNORE_FILE}: unknown keys {sorted(unknown)}: entries are [[ignore]] tables")
    entries = content.get("ignore", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise InvalidIgnoreFile(f"{IGNORE_FILE}: entries are [[ignore]] tables")
    problems = []
    for number, entry in enumerate(entries, 1):
        name = f"{IGNORE_FILE}, entry {number}" + (f" ({entry['id']})" if isinstance(entry.get("id"), str) else "")
        if unknown := entry.keys() - ENTRY_KEYS:
            problems.append(f"{name}: unknown keys {sorted(unknown)}")
        for key in ("id", "reason"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                problems.append(f"{name}: no {key}")
        # tomllib reads an unquoted date as a date, and a date-time as a
        # datetime, which is a date too: only a plain date is an expiry date.
        expires = entry.get("expires")
        if not isinstance(expires, datetime.date) or isinstance(expires, datetime.datetime):
            problems.append(f"{name}: expires must be a date, written unquoted: expires = 2027-03-31")
    if problems:
        raise InvalidIgnoreFile("\n".join([*problems, f"Each [[ignore]] entry reads:\n{EXAMPLE}"]))
    return entries


def audit(lock: str, ignored_ids: list[str]) -> int:
    """Audits one lock; prints what it finds and returns the number of vulnerabilities.

    Raises RuntimeError when pip-audit gives no result."""
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        f"--requirement={ROOT / lock}",
        # The lock is the resolved set: look its pins up, install nothing. pip
        # would otherwise resolve it again in a throw-away virtualenv.
        "--disable-pip",
        "--vulnerability-service=osv",
        "--format=json",
        "--progress-spinner=off",
        *(f"--ignore-vuln={vuln_id}" for vuln_id in ignored_ids),
    ]
    # pip-audit exits with 1 both on findings and on errors: only its JSON
    # report tells them apart. Its messages are shown when there is none: the
    # report says everything else, lock by lock.
    result = subprocess.run(command, capture_output=True, text=True)  # noqa: S603 - this interpreter's pip-audit
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"{lock}: pip-audit failed (exit status {result.returncode}):\n{result.stderr}") from None
    found = 0
    for dependency in report["dependencies"]:
        if "skip_reason" in dependency:
            print(f"{lock}: {dependency['name']} not audited: {dependency['skip_reason']}")
            continue
        for vuln in dependency["vulns"]:
            found += 1
            aliases = f" ({', '.join(vuln['aliases'])})" if vuln.get("aliases") else ""
            fixed = ", ".join(vuln["fix_versions"]) or "no fixed version yet"
            print(f"{lock}: {dependency['name']} {dependency['version']}: {vuln['id']}{aliases}, fixed in: {fixed}")
    if not found:
        print(f"{lock}: no known vulnerability in {len(report['dependencies'])} packages")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    # One log in CI: the report (stdout) and the errors (stderr) in the order they happen.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    if importlib.util.find_spec("pip_audit") is None:
        print(f"pip-audit is not installed for {sys.executable}: it comes with requirements/dev.txt", file=sys.stderr)
        return 1
    try:
        entries = read_ignore_file(ROOT / IGNORE_FILE)
    except InvalidIgnoreFile as error:
        print(error, file=sys.stderr)
        return 1

    today = datetime.date.today()
    expired = [entry for entry in entries if entry["expires"] < today]
    in_force = [entry for entry in entries if entry["expires"] >= today]
    for entry in in_force:
        print(f"accepted until {entry['expires']}: {entry['id']}: {entry['reason']}")

    vulnerabilities = failures = 0
    for lock in LOCKS:
        try:
            vulnerabilities += audit(lock, [entry["id"] for entry in in_force])
        except RuntimeError as error:
            print(error, file=sys.stderr)
            failures += 1

    # An expired acceptance no longer hides its vulnerability (reported above
    # if it is still there), and fails the gate even once the package is fixed:
    # the entry has to be reviewed either way.
    for entry in expired:
        print(
            f"{IGNORE_FILE}: the acceptance of {entry['id']} expired on {entry['expires']}: review it again "
            "(a new reason and expires date) or fix the vulnerability and remove the entry",
            file=sys.stderr,
        )
    if vulnerabilities:
        print(
            f"Known vulnerabilities: {vulnerabilities}. Upgrade to a fixed version and lock again, or accept one "
            f"in {IGNORE_FILE} with a reason and an expiry date.",
            file=sys.stderr,
        )
    return 1 if vulnerabilities or failures or expired else 0


if __name__ == "__main__":
    sys.exit(main())
