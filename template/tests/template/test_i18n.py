from django.conf import settings
from django.utils import translation


def test_a_request_gets_the_language_it_asks_for(client):
    page = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="fr-CH, fr;q=0.9, en;q=0.8")

    assert page.headers["Content-Language"] == "fr"
    assert "Nom d’utilisateur" in page.content.decode()


def test_a_request_that_asks_for_no_language_gets_the_services(client):
    page = client.get("/admin/login/")

    assert page.headers["Content-Language"] == settings.LANGUAGE_CODE
    with translation.override(settings.LANGUAGE_CODE):
        assert translation.gettext("Username") in page.content.decode()
