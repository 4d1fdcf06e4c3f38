from __future__ import annotations

import re

from openapi_spec_validator import validate

from tests.support import wait_until


def test_health_is_always_ok(client):
    assert client.get("/health").json == {"status": "ok"}


def test_ready_follows_redis(client, servers):
    assert client.get("/ready").status_code == 200
    with servers.redis_down():
        down = client.get("/ready")
    assert down.status_code == 503
    assert down.headers["Retry-After"]
    assert down.json["checks"] == {"mongodb": "ok", "redis": "down"}
    wait_until(
        lambda: client.get("/ready").status_code == 200, timeout=10, message="/ready to recover"
    )


def test_metrics_are_prometheus_text(client):
    client.get("/health")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert 'http_requests_total{endpoint="/health",method="GET",status="200"}' in response.text


def test_openapi_document_is_valid_openapi_3(client):
    spec = client.get("/api/v1/openapi.json").json
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/auth/register" in spec["paths"]
    assert client.get("/api/v1/docs").status_code == 200


def test_swagger_ui_is_served_by_the_app(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "http:" not in page.text and "https:" not in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {asset.rsplit("/", 1)[-1] for asset in assets} == {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    }
    for asset in assets:
        assert asset.startswith("/api/v1/docs/")
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert response.mimetype in {"text/css", "text/javascript"}
        assert len(response.data) > 1000
