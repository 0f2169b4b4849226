"""The proxy's healthcheck and the local production mode, as rendered
(test_stack.py runs them on a real engine)."""

import os
import re
import shutil
import subprocess

import pytest

from harness.answers import DOMAIN, VARIANTS, answers_for
from harness.docker import load_compose
from harness.policy import require

CADDY_VARIANTS = [name for name in VARIANTS if answers_for(name).get("reverse_proxy", "caddy") == "caddy"]
LOCAL_OPTIONS = "local_certs\nskip_install_trust\n"


def load(service, name):
    return load_compose(service / name)


def seconds(duration):
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, f"unexpected duration {duration!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def caddy_adapt(service, **environment):
    """The JSON configuration Caddy makes of the rendered Caddyfile."""
    caddy = shutil.which("caddy")
    require(caddy, "caddy is not installed (Debian: apt-get install caddy)")
    result = subprocess.run(
        [caddy, "adapt", "--config", "Caddyfile", "--adapter", "caddyfile"],
        cwd=service,
        env={**os.environ, "DOMAIN": DOMAIN, **environment},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("variant", CADDY_VARIANTS)
def test_the_proxy_healthcheck_requests_the_site_over_https_under_its_own_name(render, variant):
    proxy = load(render(variant), "docker-compose.prod.yml")["services"]["proxy"]
    kind, command = proxy["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    # $$ is Compose's escape: the container's shell expands DOMAIN.
    assert re.fullmatch(r'wget --quiet --spider --no-check-certificate -T 5 "https://\$\$\{DOMAIN\}/health/"', command)
    # The name resolves to the container itself, whatever public DNS says.
    assert proxy["extra_hosts"] == [f"${{DOMAIN:-{DOMAIN}}}:127.0.0.1"]
    assert proxy["environment"]["DOMAIN"] == f"${{DOMAIN:-{DOMAIN}}}"
    # A first certificate can take a minute: failures before then do not count.
    assert seconds(proxy["healthcheck"]["start_period"]) >= 120
    assert seconds(proxy["healthcheck"]["timeout"]) > 5


@pytest.mark.parametrize("variant", CADDY_VARIANTS)
def test_the_local_mode_gives_caddy_its_own_ca_and_loopback_ports_only(render, variant):
    service = render(variant)
    production = load(service, "docker-compose.prod.yml")
    local = load(service, "docker-compose.local.yml")
    assert local["name"] == f"{production['name']}-local"
    assert set(local["services"]) == {"proxy"}
    proxy = local["services"]["proxy"]
    assert proxy["environment"] == {"CADDY_GLOBAL_OPTIONS": LOCAL_OPTIONS}
    assert proxy["ports"] == [
        "127.0.0.1:${LOCAL_HTTP_PORT:-80}:80",
        "127.0.0.1:${LOCAL_HTTPS_PORT:-443}:443",
        "127.0.0.1:${LOCAL_HTTPS_PORT:-443}:443/udp",
    ]
    # Replaced, not added to the production file's ports on every interface.
    assert "ports: !override\n" in (service / "docker-compose.local.yml").read_text()


@pytest.mark.parametrize("variant", CADDY_VARIANTS)
def test_the_caddyfile_takes_certificates_from_lets_encrypt_unless_the_local_mode_says_otherwise(render, variant):
    service = render(variant)
    production = caddy_adapt(service)
    assert '"module":"internal"' not in production
    local = caddy_adapt(service, CADDY_GLOBAL_OPTIONS=LOCAL_OPTIONS)
    assert '"issuers":[{"module":"internal"}]' in local
    assert '"install_trust":false' in local


def test_make_prod_local_runs_both_compose_files(render):
    service = render("defaults")
    make = shutil.which("make")
    require(make, "make is not installed")
    both = "COMPOSE_FILE=docker-compose.prod.yml:docker-compose.local.yml docker compose"
    for target, command in {
        "prod-local": "up --detach --build --wait",
        "prod-local-stop": "stop",
        "prod-local-ca": "exec -T proxy cat /data/caddy/pki/authorities/local/root.crt",
    }.items():
        result = subprocess.run([make, "-n", target], cwd=service, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{both} {command}"


def test_without_the_bundled_proxy_there_is_no_local_mode(render):
    service = render("s3-no-proxy-no-beat-sentry")
    assert not (service / "docker-compose.local.yml").exists()
    assert "prod-local" not in (service / "Makefile").read_text()
    readme = (service / "README.md").read_text()
    assert "TLS is the load balancer's: there is no\nlocal-production mode" in readme
