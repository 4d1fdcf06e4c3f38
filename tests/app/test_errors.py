"""Bad input gets a clear 4xx with a machine-readable `error` slug, never a 500."""

from __future__ import annotations

import http.client
import io
import json
from urllib.parse import urlsplit

import pytest

from tests.support import make_city, make_person

REGISTER = "/api/v1/auth/register"


def test_malformed_json_is_400(client):
    response = client.post(REGISTER, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"] == "malformed_json"


def test_non_json_body_is_415(client):
    response = client.post(
        REGISTER, data="email=a@b.c", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.json["error"] == "unsupported_media_type"


def test_over_long_urls_and_headers_get_the_envelope(client):
    # Through a real gunicorn too: tests/app/test_launcher.py.
    too_long = client.get(f"/api/v1/cities?name={'a' * 8200}")
    assert too_long.status_code == 414
    assert too_long.json["error"] == "uri_too_long"
    too_large = client.get("/api/v1/cities", headers={"X-Padding": "a" * 8200})
    assert too_large.status_code == 431
    assert too_large.json["error"] == "header_too_large"
    assert client.get(f"/api/v1/cities?name={'a' * 8000}").status_code != 414


def test_a_header_line_is_measured_as_sent_name_colon_space_value(client):
    """`X-Padding: value` of exactly MAX_HEADER_BYTES passes, a byte more is 431; the two
    headers the environ keeps without `HTTP_` are measured the same way."""
    from app.errors import MAX_HEADER_BYTES

    fits = "a" * (MAX_HEADER_BYTES - len("X-Padding: "))
    assert client.get("/api/v1/cities", headers={"X-Padding": fits}).status_code == 200
    over = client.get("/api/v1/cities", headers={"X-Padding": fits + "a"})
    assert (over.status_code, over.json["error"]) == (431, "header_too_large")
    long_type = "application/json; padding=" + "a" * MAX_HEADER_BYTES
    refused = client.post(REGISTER, data=b"{}", headers={"Content-Type": long_type})
    assert (refused.status_code, refused.json["error"]) == (431, "header_too_large")


@pytest.mark.parametrize("body", [[1, 2], "text", 42, None])
def test_json_that_is_not_an_object_is_422(client, body):
    response = client.post(REGISTER, json=body)
    assert response.status_code == 422
    assert response.json["error"] == "validation_failed"


def test_wrong_types_and_unknown_fields_name_the_field(client):
    make_city("SZ")
    response = client.post(
        REGISTER,
        json={
            "email": 5,
            "password": ["x"],
            "display_name": "A",
            "city_code": "SZ",
            "is_admin": True,
        },
    )
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"email", "password", "is_admin"}


def test_oversize_body_is_413(client):
    response = client.post(
        REGISTER, data="{" + " " * 2_000_000 + "}", content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json["error"] == "payload_too_large"


def post_chunked(client, path: str, body: bytes, content_type: str = "application/json"):
    """A body sent with Transfer-Encoding: chunked, as a WSGI server hands it over: no
    Content-Length, and a stream the server ends (gunicorn and werkzeug say so with
    `wsgi.input_terminated`)."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={"Content-Type": content_type, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_oversize_chunked_body_is_413(client):
    response = post_chunked(client, REGISTER, b"{" + b" " * 2 * 1024 * 1024 + b"}")
    assert response.status_code == 413
    assert response.json["error"] == "payload_too_large"


def test_chunked_body_of_exactly_the_limit_is_read(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = post_chunked(client, REGISTER, b"{" + b" " * (limit - 2) + b"}")
    assert response.status_code == 422
    assert "password" in response.json["errors"]


def test_small_chunked_body_is_read(client):
    make_city("SZ")
    body = {
        "email": "a@example.com",
        "password": "password-123",
        "display_name": "A",
        "city_code": "SZ",
    }
    response = post_chunked(client, REGISTER, json.dumps(body).encode())
    assert response.status_code == 201, response.json


def test_chunked_form_body_is_415(client):
    response = post_chunked(client, REGISTER, b"email=a@b.c", "application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json["error"] == "unsupported_media_type"


@pytest.mark.parametrize("chunked", [True, False])
def test_oversize_body_is_413_through_a_real_server(live_server, chunked):
    body = b"{" + b" " * 2 * 1024 * 1024 + b"}"
    address = urlsplit(live_server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    if chunked:
        pieces = (body[start : start + 65536] for start in range(0, len(body), 65536))
        connection.request(
            "POST",
            REGISTER,
            body=pieces,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
    else:
        connection.request(
            "POST", REGISTER, body=body, headers={"Content-Type": "application/json"}
        )
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"] == "payload_too_large"
    connection.close()


def test_wrong_method_is_405_with_allow_header(client):
    response = client.delete(REGISTER)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.json["error"] == "method_not_allowed"


def test_unknown_path_is_json_404(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("get", "/", 404, None),
        ("get", "/api/v1/docs/swagger-ui/no-such-file.js", 404, None),
        ("post", "/health", 405, {"GET", "HEAD", "OPTIONS"}),
        ("post", "/api/v1/docs", 405, {"GET", "HEAD", "OPTIONS"}),
        ("put", "/api/v1/auth/login", 405, {"OPTIONS", "POST"}),
    ],
)
def test_routing_errors_everywhere_are_the_envelope(client, method, path, status, allow):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert set(response.json) == {"code", "status", "message", "error", "request_id"}
    assert response.json["code"] == status
    # werkzeug lists the allowed methods in no fixed order.
    assert allow is None or set(response.headers["Allow"].split(", ")) == allow
    assert allow is not None or "Allow" not in response.headers


def test_malformed_id_in_path_is_404(client):
    leader = make_person(role="circle_leader")
    response = client.post("/api/v1/vehicles/not-an-id/verify", headers=leader.headers)
    assert response.status_code == 404


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=101", "limit=2.5"])
def test_bad_page_size_is_422(client, query):
    assert client.get(f"/api/v1/cities?{query}").status_code == 422


@pytest.mark.parametrize("cursor", ["!!!", "bm90LWpzb24", "WzEsMl0"])
def test_bad_cursor_is_400(client, cursor):
    response = client.get(f"/api/v1/cities?cursor={cursor}")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_cursor"


@pytest.mark.parametrize("header", ["Bearer garbage", "Basic abc", "Bearer"])
def test_bad_tokens_are_401(client, header):
    response = client.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"


def test_refresh_token_is_not_an_access_token(client):
    make_city("SZ")
    tokens = client.post(
        REGISTER,
        json={
            "email": "a@example.com",
            "password": "password-123",
            "display_name": "A",
            "city_code": "SZ",
        },
    ).json
    response = client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert response.status_code == 401


def test_only_429_and_503_say_retry_after_and_limits_read_as_people_say_them(
    app, client, monkeypatch
):
    monkeypatch.setitem(app.config, "RATELIMIT_LOGIN_PER_ACCOUNT", "2 per minute")
    make_person(email="ann@example.com")
    good = {"email": "ann@example.com", "password": "password-123"}
    answers = [
        client.post("/api/v1/auth/login", json=good),
        client.post("/api/v1/auth/login", json={**good, "password": "wrong-password"}),
        client.post("/api/v1/auth/login", json=good),
    ]
    assert [answer.status_code for answer in answers] == [200, 401, 429]
    for answer in answers[:2]:
        assert "X-RateLimit-Remaining" in answer.headers
        assert "Retry-After" not in answer.headers
    invalid = client.post("/api/v1/auth/login", json={"email": "bob@example.com"})
    assert invalid.status_code == 422 and "X-RateLimit-Limit" in invalid.headers
    assert "Retry-After" not in invalid.headers
    limited = answers[2]
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.json["message"].startswith("Too many requests: at most 2 per minute.")


def test_an_error_body_carries_the_request_id_of_its_header(client):
    person = make_person()
    for answer in (
        client.get("/api/v1/events/nope", headers=person.headers),  # 404
        client.get("/api/v1/me"),  # 401
        client.post("/api/v1/me/vehicles", headers=person.headers, json={"vin": 1}),  # 422
    ):
        assert answer.status_code in (401, 404, 422)
        assert answer.json["request_id"] == answer.headers["X-Request-ID"], answer.json
    asked = client.get("/api/v1/nowhere", headers={"X-Request-ID": "from-the-app-42"})
    assert asked.status_code == 404 and asked.json["request_id"] == "from-the-app-42"
