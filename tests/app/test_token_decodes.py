"""An access token is decoded once per process, in one decode (app/auth.py `_decoded_once`):
PyJWT's parses of a token counted without patching anything (`calls_counted`)."""

from __future__ import annotations

from contextlib import AbstractContextManager

import jwt as pyjwt
from jwt.api_jws import PyJWS

from tests.support import calls_counted, make_person

API = "/api/v1"
NEW_KEY = "the-next-secret-key-0123456789abcdef"

# Every parse of a token goes through one of these: a decode (verified or not) or a read of
# its header alone.
_PARSES = (PyJWS.decode_complete, PyJWS.get_unverified_header)


def token_parses() -> AbstractContextManager[list[int]]:
    """A one-item list: how many times PyJWT parsed a token while the block ran."""
    return calls_counted(*_PARSES)


def test_a_hot_request_decodes_a_new_token_once_and_a_known_one_not_at_all(client):
    ann = make_person()
    with token_parses() as first:
        assert client.get(f"{API}/me", headers=ann.headers).status_code == 200
    with token_parses() as again:
        assert client.get(f"{API}/me/points", headers=ann.headers).status_code == 200
        assert client.get(f"{API}/me", headers=ann.headers).status_code == 200
    # flask-jwt-extended's own verification parsed a new token 4 times.
    assert first == [1]
    assert again == [0]


def test_a_token_of_the_previous_key_decodes_twice_while_keys_rotate(app, client, monkeypatch):
    ann = make_person()
    monkeypatch.setitem(app.config, "SECRET_KEY_PREVIOUS", app.config["SECRET_KEY"])
    monkeypatch.setitem(app.config, "SECRET_KEY", NEW_KEY)
    with token_parses() as parses:
        assert client.get(f"{API}/me", headers=ann.headers).status_code == 200
    assert parses == [2]


def test_what_one_decode_refuses_is_refused_in_the_library_s_words(app, client):
    ann = make_person()
    claims = pyjwt.decode(ann.token, options={"verify_signature": False})
    header = pyjwt.get_unverified_header(ann.token)
    key = app.config["SECRET_KEY"]
    refresh = pyjwt.encode({**claims, "type": "refresh"}, key, headers=header)
    expired = pyjwt.encode({**claims, "exp": 1}, key, headers=header)
    no_expiry = pyjwt.encode({k: v for k, v in claims.items() if k != "exp"}, key, headers=header)
    for authorization, message in (
        (f"Bearer {refresh}", "Invalid token."),
        (f"Bearer {expired}", "Token expired."),
        (f"Bearer {no_expiry}", "Token without an expiry."),
        (f"Bearer {ann.token}, Basic Zm9v", None),  # two schemes: the library takes its own
        (f"Token {ann.token}", "Missing or malformed token."),
        ("Bearer not.a-token", "Invalid token."),
    ):
        answer = client.get(f"{API}/me", headers={"Authorization": authorization})
        if message is None:
            assert answer.status_code == 200, authorization
        else:
            assert answer.status_code == 401, authorization
            assert answer.json["message"] == message, authorization
