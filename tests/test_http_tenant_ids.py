"""Issue 13, cases 2 and 3 over HTTP: a tenant can neither block nor probe another's moments.

Tenant B computes the id acme's Zendesk record will derive (`uuid5(... "mot:acme:zendesk:...")`)
and records a moment under it first; acme's genuine record must still go in, and nothing B
is answered may depend on what acme has. The real app over a real store (both stores).
"""

from __future__ import annotations

from typing import Any

from http_support import api

from mot.domain.identity import derived_moment_id

ZD = {"system": "zendesk", "id": "ZD-777777"}
ACME_ZD = derived_moment_id("acme", "zendesk", "ZD-777777")
NOWHERE = "77777777-7777-4777-8777-777777777777"


def genuine() -> dict[str, Any]:
    return {"customer_id": "c1", "occurred_at": "2026-03-01T09:00:00Z", "channel": "email",
            "direction": "inbound", "kind": "complaint", "function": "service", "source": ZD}


def squat(moment_id: str, **fields: Any) -> dict[str, Any]:
    return {"moment_id": moment_id, "customer_id": "m1", "occurred_at": "2026-03-01T09:00:00Z",
            "channel": "chat", "direction": "inbound", "kind": "praise", **fields}


def items(answer: Any) -> list[tuple[str, str | None, str | None]]:
    assert answer.status_code == 200, answer.text
    return [(i["outcome"], i.get("field"), i.get("reason")) for i in answer.json()["items"]]


def test_a_squatted_id_blocks_nothing_and_conflicts_reveal_nothing(store_url: str) -> None:
    with api(store_url) as client:
        # globex takes the id first, then guesses at acme's fields with further sends.
        assert items(client.post("globex", [squat(ACME_ZD)])) == [("recorded", None, None)]
        assert items(client.post("acme", [genuine()])) == [("recorded", None, None)]
        guesses = [squat(ACME_ZD, customer_id="c1"),
                   squat(ACME_ZD, channel="email", kind="complaint", function="service")]
        answered = items(client.post("globex", guesses))
        # The very same answers as for guesses at an id that no tenant has.
        assert items(client.post("globex", [squat(NOWHERE)])) == [("recorded", None, None)]
        control = items(client.post("globex", [{**g, "moment_id": NOWHERE} for g in guesses]))
        assert answered == [(o, f, r and r.replace(NOWHERE, ACME_ZD)) for o, f, r in control]
        assert [o for o, _, _ in answered] == ["quarantined", "quarantined"]
        assert all("tenant" not in (r or "") for _, _, r in answered)
        # Each tenant reads its own moment under the id.
        acme = client.get("acme", f"/v1/moments/{ACME_ZD}").json()
        globex = client.get("globex", f"/v1/moments/{ACME_ZD}").json()
        assert [r["moment"]["customer_id"] for r in acme] == ["c1"]
        assert [r["moment"]["customer_id"] for r in globex] == ["m1"]
        assert client.get("acme", "/v1/moments/zendesk:ZD-777777").json() == acme


def test_a_correction_over_http_reaches_only_the_tokens_tenant(store_url: str) -> None:
    with api(store_url) as client:
        assert items(client.post("acme", [genuine()])) == [("recorded", None, None)]
        assert items(client.post("globex", [squat(ACME_ZD)])) == [("recorded", None, None)]
        amend = {"type": "amend", "moment_id": ACME_ZD, "set": {"sentiment": -1.0},
                 "reason": "angry"}
        # Without `tenant`, the token's: never ambiguous, never another tenant's moment.
        assert items(client.post("globex", [amend])) == [("amended", None, None)]
        [(outcome, field, _)] = items(client.post("globex", [{**amend, "tenant": "acme"}]))
        assert (outcome, field) == ("rejected", "tenant")
        acme = client.get("acme", f"/v1/moments/{ACME_ZD}").json()
        globex = client.get("globex", f"/v1/moments/{ACME_ZD}").json()
        assert [r["event"] for r in acme] == ["recorded"]
        assert [r["event"] for r in globex] == ["recorded", "amended"]
        retract = {"type": "retract", "moment_id": ACME_ZD, "reason": "spam"}
        assert items(client.post("acme", [retract])) == [("retracted", None, None)]
        assert [r["event"] for r in client.get("globex", f"/v1/moments/{ACME_ZD}").json()] == [
            "recorded", "amended"]
