from servicekit.csp import CSP


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
