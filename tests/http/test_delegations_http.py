"""Capability delegation over the REST API of a real ``qmk serve --http``: create, use,
list and revoke, each a route of the route table."""

from __future__ import annotations

import httpx

from support.http import bearer, session
from support.paths import EXAMPLES

MAGIC_ASM = (EXAMPLES / "t_gate_injection.qvm.asm").read_text()


def test_a_delegation_over_http_is_created_used_listed_and_revoked(client: httpx.Client):
    alice = session(client, "alice")
    made = client.post(
        "/v1/delegations",
        json={"to_tenant": "bob", "caps": ["CAP_MAGIC"], "expires_s": 600},
        headers=bearer(alice),
    )
    assert made.status_code == 201, made.text
    loan = made.json()
    assert loan["state"] == "LIVE" and loan["from_tenant"] == "alice"
    bob = session(client, "bob", ["CAP_ALLOC", "CAP_MAGIC"])
    job = client.post(
        "/v1/jobs",
        json={"program": MAGIC_ASM, "format": "qvm-asm", "shots": 10, "seed": 1},
        headers=bearer(bob),
    )
    assert job.status_code == 201, job.text
    listed = client.get("/v1/delegations", params={"state": "LIVE"}, headers=bearer(bob))
    assert [d["delegation_id"] for d in listed.json()["delegations"]] == [loan["delegation_id"]]
    ended = client.delete(f"/v1/delegations/{loan['delegation_id']}", headers=bearer(alice))
    assert ended.status_code == 200 and ended.json()["state"] == "REVOKED"
    refused = client.post(
        "/v1/jobs",
        json={"program": MAGIC_ASM, "format": "qvm-asm", "shots": 10, "seed": 1},
        headers=bearer(bob),
    )
    assert refused.status_code == 403 and refused.json()["code"] == "QS1004", refused.text
    gone = client.delete("/v1/delegations/dlg_nope", headers=bearer(alice))
    assert gone.status_code == 404 and gone.json()["code"] == "QS1005"
