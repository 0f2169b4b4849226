from servicekit.csp import CSP, with_inline_code


def test_the_policy_comes_from_secure_csp(client):
    policy = client.get("/admin/login/").headers["Content-Security-Policy"]

    assert policy.split("; ") == [
        "default-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
    assert "Content-Security-Policy-Report-Only" not in client.get("/admin/login/").headers


def test_a_report_only_policy_is_sent_beside_it(client, settings):
    settings.SECURE_CSP_REPORT_ONLY = {
        "script-src": [CSP.SELF, CSP.STRICT_DYNAMIC],
        "report-uri": "/csp-reports/",
        "upgrade-insecure-requests": True,
        "style-src": [],
    }

    headers = client.get("/admin/login/").headers

    assert headers["Content-Security-Policy-Report-Only"] == (
        "script-src 'self' 'strict-dynamic'; report-uri /csp-reports/; upgrade-insecure-requests"
    )
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_under_debug_djangos_development_pages_may_use_inline_styles_and_scripts(client, settings):
    settings.DEBUG = True

    response = client.get("/no-such-page/")

    # Django's 404 page listing the URL patterns, styled by an inline <style>.
    assert response.status_code == 404
    assert b"<style" in response.content
    policy = dict(directive.split(" ", 1) for directive in response.headers["Content-Security-Policy"].split("; "))
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert policy["script-src"] == "'self' 'unsafe-inline'"
    # Everything else is as strict as ever.
    assert policy["default-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"


def test_without_debug_nothing_inline_is_allowed(client, settings):
    settings.DEBUG = False

    policy = client.get("/no-such-page/").headers["Content-Security-Policy"]

    assert "unsafe-inline" not in policy
    assert "style-src" not in policy and "script-src" not in policy


def test_debug_relaxes_a_policy_only_where_it_restricts_inline_code():
    relaxed = with_inline_code(
        {
            "default-src": [CSP.NONE],
            "script-src-attr": [CSP.NONE],
            "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
            "img-src": [CSP.SELF],
        }
    )

    assert relaxed == {
        "default-src": [CSP.NONE],
        "script-src": [CSP.UNSAFE_INLINE],
        "script-src-attr": [CSP.UNSAFE_INLINE],
        "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
        "img-src": [CSP.SELF],
    }
    # A policy that does not restrict scripts or styles still does not.
    assert with_inline_code({"img-src": [CSP.SELF]}) == {"img-src": [CSP.SELF]}
