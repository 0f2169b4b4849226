"""The admin works in a real browser under the production Content-Security-Policy."""

import shutil

import pytest

from harness.answers import answers_for
from harness.policy import require
from harness.servers import free_port
from harness.service import http_get, log_of, prepare_service, wait_for

pytestmark = pytest.mark.service

CHROMIUM = shutil.which("chromium") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    require(CHROMIUM and CHROMEDRIVER, "Chromium and its driver are not installed (Debian: chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_admin_login_works_under_the_content_security_policy(
    request, render, postgres_server, redis_server, browser, tmp_path
):
    from selenium.webdriver.common.by import By

    service = prepare_service(render("defaults"), tmp_path / "service", answers_for("defaults"))
    port = free_port()
    # Production settings, served over plain HTTP on localhost: browsers treat
    # localhost as a secure context, so Secure cookies still work.
    env = service.production_env(
        postgres_server.create_database("browser"),
        redis_server.url,
        ALLOWED_HOSTS="localhost",
        CSRF_TRUSTED_ORIGINS=f"http://localhost:{port}",
        SECURE_SSL_REDIRECT="false",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS=2,
        GUNICORN_CONTROL_SOCKET=tmp_path / "gunicorn.ctl",
        DJANGO_SUPERUSER_PASSWORD="correct horse battery staple",
    )
    service.manage("migrate", "--noinput", env=env)
    service.manage("collectstatic", "--noinput", env=env)
    service.manage("createsuperuser", "--noinput", "--username=admin", "--email=admin@example.org", env=env)
    gunicorn = service.start(service.bin / "gunicorn", "--config", "gunicorn.conf.py", env=env, log_name="gunicorn")
    request.addfinalizer(service.close)
    base = f"http://localhost:{port}"
    wait_for(lambda: http_get(f"http://127.0.0.1:{port}/health/")[0] == 200, message="gunicorn")

    status, headers, _ = http_get(f"{base}/admin/login/")
    assert status == 200
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy

    browser.get(f"{base}/admin/login/")
    # The admin's stylesheet applied: its header has the admin's colours, not the browser's default.
    header_colour = browser.execute_script("return getComputedStyle(document.getElementById('header')).backgroundColor")
    assert header_colour not in ("rgba(0, 0, 0, 0)", "transparent")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("correct horse battery staple")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(lambda: "Site administration" in browser.page_source, timeout=15, message="the admin index")

    violations = [
        entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]
    ]
    assert violations == []
    assert "POST /admin/login/" in log_of(gunicorn)
