"""The load `bench/overload.py` drives through locust: owners reading their points and their
city's events, each simulated owner at a fixed rate whatever the answers take (so the
arrival rate stays above what the API can serve), with a client timeout.

Reads OVERLOAD_TOKENS (a file of access tokens, one a line), OVERLOAD_RATE (requests per
second per simulated owner) and OVERLOAD_RESULTS (where to write, at the end, each
request's status and latency as JSON)."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from locust import events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.user.wait_time import constant_throughput

_tokens = itertools.cycle(Path(os.environ["OVERLOAD_TOKENS"]).read_text().split())
# (status, milliseconds); status 0: no answer (timed out or the connection failed).
_samples: list[tuple[int, float]] = []


class Owner(FastHttpUser):
    wait_time = constant_throughput(float(os.environ["OVERLOAD_RATE"]))
    # Past this the client gives up: an answer that takes longer is as good as none.
    network_timeout = 10.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {next(_tokens)}"}

    @task(3)
    def points(self) -> None:
        self.client.get("/api/v1/me/points", headers=self.headers, name="points")

    @task(1)
    def events(self) -> None:
        self.client.get("/api/v1/events?city=SZ", headers=self.headers, name="events")


@events.request.add_listener
def _record(response_time, response, **_) -> None:
    _samples.append((getattr(response, "status_code", 0) or 0, response_time))


@events.quitting.add_listener
def _write(**_) -> None:
    Path(os.environ["OVERLOAD_RESULTS"]).write_text(json.dumps(_samples))
