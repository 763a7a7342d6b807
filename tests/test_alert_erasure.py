"""An erased person (SPEC §6) leaves no personal field in the alerts outbox, and a rebuild after
the erasure raises none of their alerts again."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import mot
from test_erasure import MARIA, _lines

from mot.bootstrap import open_store


def outbox_text(store: str) -> str:
    with open_store(store) as services, services.backend.read() as tx:
        return json.dumps(tx.query("SELECT * FROM alerts"))


def test_an_erasure_takes_the_person_out_of_the_alerts(tmp_path: Path, store_url: str) -> None:
    source = tmp_path / "in.jsonl"
    asks = [{"tenant": "acme", "customer_id": MARIA, "occurred_at": f"2026-03-02T0{n}:00:00Z",
             "channel": "email", "direction": "outbound", "kind": "ask", "ask_type": "review",
             "function": "marketing", "source": {"system": "hubspot", "id": f"maria-ask-{n}"}}
            for n in (1, 2)]  # two unanswered asks: a stop_asking alert of Maria's
    source.write_bytes(_lines() + b"".join(json.dumps(a).encode() + b"\n" for a in asks))
    config = tmp_path / "mot.toml"
    config.write_text('[alerts]\nwindow = "1000d"\nnegative_reach = 50\n')  # the moments are fresh
    env = {"MOT_CONFIG": str(config)}
    mot(store_url, "import", "-q", source)
    mot(store_url, "project", env=env)
    before = json.loads(mot(store_url, "alerts", "list", "--format", "json").stdout)
    assert "@maria_erase_actor" in outbox_text(store_url)  # c2's post was triggered by Maria
    mot(store_url, "erase", "--tenant", "acme", "--customer", MARIA, "--reason", "r")
    assert any(a["customer_id"] == MARIA and a["tenant"] == "acme" for a in before)
    assert "@maria_erase_actor" not in outbox_text(store_url)
    assert MARIA not in outbox_text(store_url)  # globex's Maria raised no alert
    after = json.loads(mot(store_url, "alerts", "list", "--format", "json").stdout)
    assert not any(a["customer_id"] == MARIA and a["tenant"] == "acme" for a in after)
    assert any(a["customer_id"] == MARIA and a["tenant"] == "globex" for a in after) == any(
        a["customer_id"] == MARIA and a["tenant"] == "globex" for a in before)
    assert [a["alert_id"] for a in after] == [a["alert_id"] for a in before]
    mot(store_url, "replay", env=env)
    again = json.loads(mot(store_url, "alerts", "list", "--format", "json").stdout)
    assert [a["alert_id"] for a in again] == [a["alert_id"] for a in before]
    assert "@maria_erase_actor" not in outbox_text(store_url)


def test_an_erased_id_leaves_the_alerts_of_a_person_it_was_linked_to_then(
        tmp_path: Path, store_url: str) -> None:
    her = "x:maria-once-linked"
    lines = [{"tenant": "acme", "customer_id": "a-cust", "occurred_at": f"2026-03-02T0{n}:00:00Z",
              "channel": "email", "direction": "outbound", "kind": "ask", "ask_type": "review",
              "source": {"system": "hubspot", "id": f"a-ask-{n}"}} for n in (1, 2)]
    lines += [{"tenant": "acme", "customer_id": her, "occurred_at": "2026-03-01T09:00:00Z",
               "channel": "email", "direction": "inbound", "kind": "question",
               "source": {"system": "zendesk", "id": "maria-q"}},
              {"type": "link", "tenant": "acme", "customer_ids": ["a-cust", her],
               "occurred_at": "2026-03-01T00:00:00Z", "reason": "same email"}]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(json.dumps(m).encode() + b"\n" for m in lines))
    config = tmp_path / "mot.toml"
    config.write_text('[alerts]\nwindow = "1000d"\n')
    env = {"MOT_CONFIG": str(config)}
    mot(store_url, "import", "-q", source)
    mot(store_url, "project", env=env)
    [alert] = json.loads(mot(store_url, "alerts", "list", "--format", "json").stdout)
    assert (alert["customer_id"], alert["customer_ids"]) == ("a-cust", ["a-cust", her])
    # Not the same person after all: she is erased alone.
    mot(store_url, "identity", "unlink", "--tenant", "acme", "a-cust", her, "--reason", "wrong",
        "--at", "2026-03-03T00:00:00Z", env=env)
    mot(store_url, "project", env=env)
    receipt = json.loads(mot(store_url, "erase", "--tenant", "acme", "--customer", her,
                             "--reason", "r").stdout)
    assert receipt["customer_ids_with_moments"] == 1
    assert her not in outbox_text(store_url)
    [after] = json.loads(mot(store_url, "alerts", "list", "--format", "json").stdout)
    assert (after["alert_id"], after["customer_id"]) == (alert["alert_id"], "a-cust")
