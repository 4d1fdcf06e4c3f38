"""The same-work floor of bench/request_cpu.py: a bare Flask app, served by gunicorn exactly as
the API is, whose endpoints do a hot request's logical work leanly, so that what the API's
CPU costs above them is the price of its own layers.

- GET /hello: Flask and gunicorn alone;
- GET /find-one?user=ID: plus one point read of the account;
- GET /jwt-find-one: plus the access token verified (PyJWT, one decode) and its account read;
- POST /register/EVENT_ID: the token, the account, and the registration's lean transaction
  (bench/registration.py's `lean_registration`);
- POST /redeem/REWARD_ID: the token, the account, and the redemption's lean transaction
  (bench/ledger.py's `_lean_redeem`), at 1 point.

`gunicorn bench.floor:app`, with MONGODB_URI and the API's SECRET_KEY settings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jwt
from bson import ObjectId
from flask import Flask, abort, jsonify, request

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import config  # noqa: E402
from app import db as app_db  # noqa: E402
from bench.ledger import _lean_redeem  # noqa: E402
from bench.registration import lean_registration  # noqa: E402

settings = config.load()
app_db.connect(settings["MONGODB_URI"])
SECRET = settings["SECRET_KEY"]
users = app_db.database().users
app = Flask(__name__)


def _caller() -> ObjectId:
    """The token's account, read: what authenticating a request logically needs."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        abort(401)
    user = users.find_one({"_id": ObjectId(claims["sub"])})
    if user is None:
        abort(401)
    return user["_id"]


@app.get("/health")
@app.get("/hello")
def hello():
    return "hello"


@app.get("/find-one")
def find_one():
    return jsonify(found=users.find_one({"_id": ObjectId(request.args["user"])}) is not None)


@app.get("/jwt-find-one")
def jwt_find_one():
    return jsonify(id=str(_caller()))


@app.post("/register/<event_id>")
def register(event_id: str):
    lean_registration(ObjectId(event_id), _caller())
    return jsonify(status="registered"), 201


@app.post("/redeem/<reward_id>")
def redeem(reward_id: str):
    _lean_redeem(_caller(), ObjectId(reward_id), 1)
    return jsonify(status="pending"), 201
