import logging

from django.test import Client


def test_a_request_for_an_unknown_host_is_one_warning_without_traceback(caplog):
    with caplog.at_level(logging.INFO):
        response = Client().get("/admin/login/", HTTP_HOST="attacker.example.com")

    assert response.status_code == 400
    records = [record for record in caplog.records if record.name == "django.security.DisallowedHost"]
    assert [(record.levelname, record.exc_info) for record in records] == [("WARNING", None)]
    assert "attacker.example.com" in records[0].getMessage()
