"""An erased person (SPEC §6) leaves no personal field in the alerts outbox, and a rebuild after
the erasure raises none of their alerts again."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class _Echoing(BaseHTTPRequestHandler):
    """A webhook receiver that refuses every alert and echoes what it got in its answer, as
    many frameworks' validation errors do: the answer names the customer."""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = b'{"error": "unknown customer", "got": ' + body + b"}"
        self.send_response(422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def test_an_erasure_takes_the_person_out_of_a_receivers_answers(
        tmp_path: Path, store_url: str) -> None:
    """A failed delivery keeps the receiver's answer (`last_error`); a receiver that echoes
    the alert put her id and actor there, which must go with her (SPEC §6)."""
    source = tmp_path / "in.jsonl"
    asks = [{"tenant": "acme", "customer_id": MARIA, "occurred_at": f"2026-03-02T0{n}:00:00Z",
             "channel": "email", "direction": "outbound", "kind": "ask", "ask_type": "review",
             "function": "marketing", "actor": "@maria_erase_actor",
             "source": {"system": "hubspot", "id": f"maria-ask-{n}"}} for n in (1, 2)]
    source.write_bytes(b"".join(json.dumps(a).encode() + b"\n" for a in asks))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echoing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = tmp_path / "mot.toml"
        config.write_text('[alerts]\nwindow = "1000d"\n[[alerts.webhooks]]\n'
                          f'url = "http://127.0.0.1:{server.server_address[1]}/hook"\nsecret = "k"\n')
        env = {"MOT_CONFIG": str(config)}
        mot(store_url, "import", "-q", source)
        mot(store_url, "project", env=env)
        mot(store_url, "alerts", "deliver", "--config", config, "--max-attempts", "1", env=env)
    finally:
        server.shutdown()
        server.server_close()
    [failed] = json.loads(mot(store_url, "alerts", "list", "--failed", "--format", "json").stdout)
    error = failed["deliveries"][0]["error"]
    assert error.startswith("HTTP 422") and MARIA in error  # so the test can fail
    mot(store_url, "erase", "--tenant", "acme", "--customer", MARIA, "--reason", "r")
    with open_store(store_url) as services, services.backend.read() as tx:
        deliveries = json.dumps(tx.query("SELECT * FROM alert_deliveries"))
    assert MARIA not in deliveries and "@maria_erase_actor" not in deliveries
    # The failure stays listed, with its status: only the receiver's words went.
    [after] = json.loads(mot(store_url, "alerts", "list", "--failed", "--format", "json").stdout)
    assert after["alert_id"] == failed["alert_id"]
    assert after["deliveries"][0]["state"] == "failed"
    assert after["deliveries"][0]["error"].startswith("HTTP 422")


def test_a_delivery_in_flight_during_an_erasure_keeps_no_answer_naming_her(
        tmp_path: Path, store_url: str) -> None:
    """A deliverer claimed her alert before the erasure and settles it after: the receiver's
    answer (which may echo the alert) is not kept for an alert the erasure made anonymous."""
    import time

    from mot.service.alerting import Outcome

    source = tmp_path / "in.jsonl"
    asks = [{"tenant": "acme", "customer_id": MARIA, "occurred_at": f"2026-03-02T0{n}:00:00Z",
             "channel": "email", "direction": "outbound", "kind": "ask", "ask_type": "review",
             "function": "marketing", "source": {"system": "hubspot", "id": f"maria-ask-{n}"}}
            for n in (1, 2)]
    source.write_bytes(b"".join(json.dumps(a).encode() + b"\n" for a in asks))
    config = tmp_path / "mot.toml"
    config.write_text('[alerts]\nwindow = "1000d"\n')
    mot(store_url, "import", "-q", source)
    mot(store_url, "project", env={"MOT_CONFIG": str(config)})
    now = int(time.time() * 1_000_000)
    with open_store(store_url) as services:
        outbox = services.alert_outbox
        outbox.enqueue("hook", lambda a: True, 10)
        [claimed] = outbox.claim(["hook"], "deliverer-1", now, 60_000_000, 10)
        assert claimed.stored.alert.customer_id == MARIA
    mot(store_url, "erase", "--tenant", "acme", "--customer", MARIA, "--reason", "r")
    with open_store(store_url) as services:
        services.alert_outbox.settle("deliverer-1", [Outcome(
            "hook", claimed.stored.alert.alert_id, "failed", 1, now,
            f'HTTP 422: {{"error": "unknown customer {MARIA}"}}', now)])
        with services.backend.read() as tx:
            [(error,)] = tx.query("SELECT last_error FROM alert_deliveries")
    assert error.startswith("HTTP 422") and MARIA not in error
