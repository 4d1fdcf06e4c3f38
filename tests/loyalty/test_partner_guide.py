"""The API guide's worked example for partner integrators runs: its shell `post` signs with
openssl as the server checks, and curl's requests are served (docs/api-guide.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loyalty.models import PartnerTransaction
from tests.loyalty.conftest import assert_invariants, earn
from tests.loyalty.partners import pay_code, register_partner
from tests.support import make_person

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "api-guide.md").read_text()


def the_post_function() -> str:
    """The example's `post` function, as an integrator would copy it."""
    [example] = re.findall(r"```sh\n(BASE=.*?\npost\(\) \{.*?\n\}\n)", GUIDE, re.DOTALL)
    return "\n".join(line for line in example.splitlines() if not re.match(r"[A-Z]+=", line))


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("openssl")), reason="no curl")
def test_the_guides_curl_example_debits_and_reverses(live_server, client, admin):
    owner = make_person("SZ")
    earn(owner.id, 1_000)
    partner = register_partner(client, admin)
    code = pay_code(client, owner, 500)

    def post(path: str, body: dict) -> dict:
        script = f"{the_post_function()}\npost {path} '{json.dumps(body)}'"
        environment = {
            "BASE": f"{live_server}/api/v1",
            "KEY": partner.key,
            "SECRET": partner.secret,
        }
        ran = subprocess.run(
            ["bash", "-c", script],
            env={**environment, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return json.loads(ran.stdout)

    debit = post(
        "/partner/points/debits",
        {"pay_code": f"ocpay:{code}", "partner_txn_id": "chg-0042", "points": 300},
    )
    assert debit["kind"] == "debit" and debit["balance_after"] == 700, debit
    refund = post(
        "/partner/points/reversals",
        {"partner_txn_id": "chg-0042", "reversal_txn_id": "chg-0042-r1", "points": 100},
    )
    assert refund["balance_after"] == 800, refund
    assert PartnerTransaction.objects.get(partner_txn_id="chg-0042").reversed == 100
    assert assert_invariants(owner.id) == 800
