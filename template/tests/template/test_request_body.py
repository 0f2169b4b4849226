def test_a_body_announced_over_the_limit_is_refused_before_it_is_read(client, settings):
    settings.REQUEST_BODY_MAX_BYTES = 100

    response = client.post("/admin/login/", data="x" * 101, content_type="text/plain")

    assert response.status_code == 413


def test_a_body_within_the_limit_reaches_the_view(client, settings):
    settings.REQUEST_BODY_MAX_BYTES = 100

    response = client.post("/admin/login/", data="x" * 100, content_type="text/plain")

    assert response.status_code == 200
