"""Delivering alerts at least once to real receivers on 127.0.0.1 (SPEC §3.6, issue 16).

A receiver in the test fails, times out, then succeeds; permanent refusals go to the
failed list and come back with --retry-failed; a deliverer killed with SIGKILL
mid-batch re-sends at most its batch; two deliverers never send one alert at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from alert_support import config_text, make_alert, receiving
from cli_support import mot

from mot.bootstrap import open_store
from mot.service.alert_config import alert_config
from mot.service.alerting import AlertQuery, Backoff, signature, slack_text

MOT = Path(sys.executable).parent / "mot"


def toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


def test_a_webhook_that_fails_then_times_out_then_succeeds_gets_the_alert(
        tmp_path: Path, store_kind: str, make_store_url: Any) -> None:
    def answer(alert: str, seen: int) -> tuple[int, float]:
        return [(503, 0.0), (200, 10.0), (200, 0.0)][min(seen, 2)]  # the second: too slow

    alert = make_alert(1)
    with receiving("s3cret", answer) as receiver, open_store(make_store_url(store_kind)) as services:
        assert services.alert_outbox.raise_alerts([alert]) == 1
        config = alert_config(toml(config_text(f'url = "{receiver.url}"\nsecret = "s3cret"')))
        # A timeout long enough for the prompt answers to come in time on a loaded machine
        # (the third must: a fourth POST would fail the test), short of the slow one's.
        deliverer = services.deliverer(config, backoff=Backoff(0.05, 1.0, 5), timeout_s=3)
        rounds = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rounds.append(deliverer.deliver_once())
            if rounds[-1].delivered:
                break
            time.sleep(0.05)
        deliverer.close()
        assert [r["id"] for r in receiver.received] == [alert.alert_id] * 3
        assert receiver.bad_signatures == 0
        # Each retry waited for its backoff (base 0.05 s, x0.5-1.5 jitter).
        gaps = [b["at"] - a["at"] for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
        assert all(gap >= 0.02 for gap in gaps)
        body = receiver.received[-1]["body"]
        assert body["alert_id"] == alert.alert_id and body["rule"] == "detractor"
        assert (body["tenant"], body["customer_id"], body["customer_ids"]) == (
            "acme", "hubspot:1", ["hubspot:1"])
        assert (body["function"], body["actor"], body["channel"], body["from"], body["to"]) == (
            "logistics", "dana", "twitter", "engaged", "detractor")
        assert body["trigger_function"] == "logistics" and body["trigger_actor"] == "dana"
        assert abs(int(receiver.received[-1]["timestamp"]) - time.time()) < 30
        [stored] = services.alerts.find(AlertQuery())
        assert stored.deliveries == ((receiver.url, "delivered", 3, None),)
        assert services.alert_outbox.counts().delivered == 1
        # Delivered once: another round sends nothing.
        again = services.deliverer(config, timeout_s=3)
        assert again.deliver_once().delivered == 0
        again.close()
        assert len(receiver.received) == 3


def test_refused_and_exhausted_deliveries_go_to_the_failed_list_and_come_back(
        tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    refused, flaky = make_alert(1), make_alert(2)
    answers = {refused.alert_id: 404, flaky.alert_id: 500}
    fixed = {"now": False}

    def answer(alert: str, seen: int) -> tuple[int, float]:
        return (200, 0.0) if fixed["now"] else (answers[alert], 0.0)

    with receiving("k", answer) as receiver:
        config = tmp_path / "mot.toml"
        config.write_text(config_text(f'url = "{receiver.url}"\nsecret = "k"'))
        with open_store(store) as services:
            services.alert_outbox.raise_alerts([refused, flaky])
        for _ in range(3):
            mot(store, "alerts", "deliver", "--config", config, "--backoff", "0.01",
                "--max-attempts", "3")
            time.sleep(0.05)
        counts = receiver.counts()
        assert (counts[refused.alert_id], counts[flaky.alert_id]) == (1, 3)  # 404: never again
        failed = json.loads(mot(store, "alerts", "list", "--failed", "--format", "json").stdout)
        assert sorted(r["alert_id"] for r in failed) == sorted([refused.alert_id, flaky.alert_id])
        errors = {r["alert_id"]: r["deliveries"][0]["error"] for r in failed}
        assert errors[refused.alert_id].startswith("HTTP 404")
        assert errors[flaky.alert_id].startswith("HTTP 500")
        status = json.loads(mot(store, "status", "--format", "json").stdout)
        assert status["alerts"] == {"raised": 2, "pending": 0, "delivered": 0, "failed": 2}
        fixed["now"] = True
        result = mot(store, "alerts", "deliver", "--config", config, "--retry-failed")
        assert "2 failed deliveries to send again" in result.stderr
        assert "delivered 2" in result.stderr
        assert json.loads(mot(store, "alerts", "list", "--failed", "--format", "json").stdout) == []


def test_filters_slack_format_and_ack(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    detractor, asking, other_tenant = make_alert(1), make_alert(2, "stop_asking"), make_alert(
        3, tenant="globex")
    with receiving(None) as slack, receiving("k") as hook:
        config = tmp_path / "mot.toml"
        config.write_text(config_text(
            f'url = "{slack.url}"\nformat = "slack"\ninsecure = true',
            f'url = "{hook.url}"\nsecret = "k"\nrules = ["detractor"]\ntenants = ["acme"]'))
        with open_store(store) as services:
            services.alert_outbox.raise_alerts([detractor, asking, other_tenant])
        mot(store, "alerts", "ack", asking.alert_id)
        mot(store, "alerts", "deliver", "--config", config)
        assert set(hook.counts()) == {detractor.alert_id}
        assert set(slack.counts()) == {detractor.alert_id, other_tenant.alert_id}  # not the acked one
        text = next(r["body"] for r in slack.received if r["id"] == detractor.alert_id)
        assert text["text"] == slack_text(detractor)
        assert text["text"].startswith(
            "acme · hubspot:1 became a detractor 3 h after logistics' answer by dana · twitter")
        assert text["blocks"][0]["text"]["text"] == text["text"]
        listed = json.loads(mot(store, "alerts", "list", "--format", "json").stdout)
        assert [r["acked_at"] is not None for r in listed] == [False, True, False]
        assert mot(store, "alerts", "ack", "nope", ok=False).exit_code == 1


def test_bad_configuration_stops_delivery_with_the_key_named(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    config = tmp_path / "mot.toml"
    config.write_text(config_text('url = "https://hooks.example.com/x"'))
    result = mot(store, "alerts", "deliver", "--config", config, ok=False)
    assert result.exit_code == 1
    assert f"{config}: [[alerts.webhooks]] #1 secret: required" in result.output


def test_deliver_without_a_configuration_file_says_there_is_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no ./mot.toml and no --config, `mot alerts deliver` said "no destination
    configured in ./mot.toml", sending the user to look for sections in a file that is not
    there. It says there is no file, where it looked, and how to name one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MOT_CONFIG", raising=False)
    result = mot(str(tmp_path / "mot.db"), "alerts", "deliver", ok=False)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no ./mot.toml here and no --config FILE (or MOT_CONFIG): nothing says where "
        "alerts go; write "
        "[[alerts.webhooks]] or [alerts.kafka] in a mot.toml (docs/alerts.md)\n")
    empty = tmp_path / "empty.toml"
    empty.write_text("[alerts]\n")
    result = mot(str(tmp_path / "mot.db"), "alerts", "deliver", "--config", empty, ok=False)
    assert result.stderr == (f"Error: no destination configured in {empty}: add "
                             "[[alerts.webhooks]] or [alerts.kafka]\n")


def test_the_readmes_receiver_check_accepts_what_mot_sends_and_nothing_else(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = next(block for block in readme.split("```python\n")[1:] if "def verify" in block)
    scope: dict[str, Any] = {}
    exec(snippet.split("```", 1)[0], scope)
    verify = scope["verify"]
    store = str(tmp_path / "mot.db")
    with receiving("k") as receiver:
        config = tmp_path / "mot.toml"
        config.write_text(config_text(f'url = "{receiver.url}"\nsecret = "k"'))
        with open_store(store) as services:
            services.alert_outbox.raise_alerts([make_alert(1)])
        mot(store, "alerts", "deliver", "--config", config)
    [post] = receiver.received
    assert verify(b"k", post["headers"], post["raw"])
    assert not verify(b"other", post["headers"], post["raw"])
    assert not verify(b"k", post["headers"], post["raw"] + b" ")
    old = {**post["headers"], "X-Mot-Timestamp": str(int(post["timestamp"]) - 3600)}
    old["X-Mot-Signature"] = signature("k", old["X-Mot-Timestamp"], post["raw"])
    assert not verify(b"k", old, post["raw"])  # signed, but an hour old


def _deliverer(store: str, config: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(MOT), "--store", store, "alerts", "deliver", "--config",
                             str(config), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_a_deliverer_killed_mid_batch_resends_at_most_that_batch(tmp_path: Path,
                                                                 store_url: str) -> None:
    store = store_url
    alerts = [make_alert(n) for n in range(60)]

    def slow(alert: str, seen: int) -> tuple[int, float]:
        return 200, 0.3

    with receiving("k", slow) as receiver:
        config = tmp_path / "mot.toml"
        config.write_text(config_text(f'url = "{receiver.url}"\nsecret = "k"'))
        with open_store(store) as services:
            services.alert_outbox.raise_alerts(alerts)
        # Batches of 10 sent 16 at a time: each batch takes about 0.3 s.
        first = _deliverer(store, config, "--batch", "10", "--lease", "2")
        deadline = time.monotonic() + 120
        while len(receiver.received) < 25 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        time.sleep(2.5)  # the killed deliverer's lease runs out
        # Counted once the killed deliverer's last requests, still in the receiver's socket
        # when it died, have been read: counted at the kill, one of them could arrive after
        # and pass for a resend of an alert never received (make test, 2026-12-07).
        got_before = receiver.counts()
        second = _deliverer(store, config, "--batch", "10", "--lease", "2")
        assert second.wait(60) == 0, second.stderr.read() if second.stderr else ""
        counts = receiver.counts()
        assert set(counts) == {a.alert_id for a in alerts}  # every alert arrived
        twice = [ident for ident, n in counts.items() if n > 1]
        assert len(twice) <= 10  # at most the batch in flight when it was killed
        assert all(got_before[ident] == 1 for ident in twice)
        with open_store(store) as services:
            assert services.alert_outbox.counts().delivered == 60


@pytest.mark.slow
def test_two_deliverers_never_send_one_alert_at_the_same_time(tmp_path: Path,
                                                              store_url: str) -> None:
    store = store_url
    alerts = [make_alert(n) for n in range(200)]

    def slowish(alert: str, seen: int) -> tuple[int, float]:
        return 200, 0.01

    with receiving("k", slowish) as receiver:
        config = tmp_path / "mot.toml"
        config.write_text(config_text(f'url = "{receiver.url}"\nsecret = "k"'))
        with open_store(store) as services:
            services.alert_outbox.raise_alerts(alerts)
        both = [_deliverer(store, config, "--batch", "20"), _deliverer(store, config, "--batch", "20")]
        for p in both:
            assert p.wait(60) == 0, p.stderr.read() if p.stderr else ""
        counts = receiver.counts()
        assert receiver.overlaps == []
        assert set(counts) == {a.alert_id for a in alerts}
        assert max(counts.values()) == 1
        assert receiver.bad_signatures == 0



def test_a_receiver_that_is_not_there_is_retried_with_the_reason(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = str(tmp_path / "mot.db")
    config = tmp_path / "mot.toml"
    config.write_text(config_text(f'url = "http://127.0.0.1:{port}/hook"\nsecret = "k"'))
    with open_store(store) as services:
        services.alert_outbox.raise_alerts([make_alert(1)])
    result = mot(store, "alerts", "deliver", "--config", config)
    assert "retrying 1" in result.stderr
    [listed] = json.loads(mot(store, "alerts", "list", "--format", "json").stdout)
    [delivery] = listed["deliveries"]
    assert (delivery["state"], delivery["attempts"]) == ("pending", 1)
    assert delivery["error"].startswith("ConnectionRefusedError")


def test_a_slack_sentence_links_the_moment_and_json_names_its_url(
        tmp_path: Path, store_url: str, golden_path: Path) -> None:
    """The url is the moment's current one, read from the projections (the alert does not keep
    it): c1's detractor alert is their negative post, https://example.com/p/1."""
    with receiving(None) as slack, receiving("k") as hook:
        config = tmp_path / "mot.toml"
        config.write_text(config_text(
            f'url = "{slack.url}"\nformat = "slack"\ninsecure = true\nrules = ["detractor"]',
            f'url = "{hook.url}"\nsecret = "k"\nrules = ["detractor"]',
            extra='[alerts]\nwindow = "1000d"\n'))
        env = {"MOT_CONFIG": str(config)}
        mot(store_url, "import", "-q", golden_path)
        mot(store_url, "project", env=env)
        mot(store_url, "alerts", "deliver", env=env)
        [alert] = [r["body"] for r in hook.received if r["body"]["customer_id"] == "c1"
                   and r["body"]["tenant"] == "acme"]
        assert alert["url"] == "https://example.com/p/1"
        [text] = [r["body"]["text"] for r in slack.received if r["id"] == alert["alert_id"]]
    assert text == ("acme · c1 became a detractor 2 h after marketing's answer · twitter"
                    " · <https://example.com/p/1|example.com/p/1>")
    listed = json.loads(mot(store_url, "alerts", "list", "--rule", "detractor", "--format",
                            "json").stdout)
    assert {a["url"] for a in listed if a["customer_id"] == "c1"} == {"https://example.com/p/1"}


def test_a_webhook_added_later_gets_the_fresh_alerts_not_the_history(tmp_path: Path) -> None:
    """A destination first seen by a deliverer starts with the alerts raised within the window
    before (still fresh enough to act on); older ones stay where they are."""
    from alert_support import S

    store = str(tmp_path / "mot.db")
    now = int(time.time() * S)
    old, recent = make_alert(1, raised_us=now - 100 * 3600 * S), make_alert(2, raised_us=now - 3600 * S)
    with receiving("k") as first, receiving("k") as later:
        config = tmp_path / "mot.toml"
        config.write_text(config_text(f'url = "{first.url}"\nsecret = "k"'))
        with open_store(store) as services:
            services.alert_outbox.raise_alerts([old])
        mot(store, "alerts", "deliver", "--config", config)
        assert set(first.counts()) == set()  # raised 100 h ago: history for it too
        with open_store(store) as services:
            services.alert_outbox.raise_alerts([recent])
        config.write_text(config_text(f'url = "{first.url}"\nsecret = "k"',
                                      f'url = "{later.url}"\nsecret = "k"\nname = "later"'))
        mot(store, "alerts", "deliver", "--config", config)
        assert set(first.counts()) == {recent.alert_id}
        assert set(later.counts()) == {recent.alert_id}
        newer = make_alert(3)
        with open_store(store) as services:
            services.alert_outbox.raise_alerts([newer])
        mot(store, "alerts", "deliver", "--config", config)
        assert set(later.counts()) == {recent.alert_id, newer.alert_id}


def test_alerts_of_a_tenant_the_store_does_not_know_are_refused_naming_the_known_ones(
        store_url: str, golden_path: Path) -> None:
    """`mot alerts list --tenant nobody` answered [] (exit 0), so a misspelt tenant passed for
    one with no alerts. It is refused as `mot query --tenant nobody` is, naming the tenants."""
    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "project", "-q")
    refused = mot(store_url, "alerts", "list", "--tenant", "acm", "--format", "json", ok=False)
    assert refused.exit_code == 1 and refused.stdout == ""
    assert "no tenant 'acm' in this store (tenants: acme, globex)" in refused.stderr
    # A known tenant with no alert (the golden moments are older than the default window)
    # answers [] as before.
    assert json.loads(mot(store_url, "alerts", "list", "--tenant", "acme", "--format",
                          "json").stdout) == []


def test_a_receiver_whose_answer_never_ends_is_given_up_on_within_the_timeout() -> None:
    """The socket timeout bounds each read, not the answer: a receiver that said
    `Content-Length: 1000000000` and then sent a few bytes a second (or an endless stream)
    held the deliverer's round, and so every other destination's alerts, for as long as it
    liked, the answer growing in memory. The whole answer now has the timeout; past it the
    attempt is a timeout, retried later, and what was read is dropped."""
    import socket
    import threading

    from mot.adapters.alert_destinations import Webhook
    from mot.service.alert_config import WebhookSettings

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
            while not stop.is_set():
                try:
                    connection.sendall(b"x" * 100)
                except OSError:
                    return
                time.sleep(0.1)

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    webhook = Webhook(WebhookSettings(name=url, url=url, secret="s3cret"), timeout_s=1.0)
    started = time.monotonic()
    try:
        [sent] = webhook.send([make_alert(1)])
    finally:
        stop.set()
        webhook.close()
        listener.close()
    assert time.monotonic() - started < 5
    assert sent == (False, True, "timed out after 1 s"), sent


@contextlib.contextmanager
def silent_listener() -> Any:
    """A real 127.0.0.1 listener that accepts every connection and never answers (a dead
    receiver behind a load balancer): each POST to it costs the deliverer its timeout."""
    server = socket.create_server(("127.0.0.1", 0), backlog=256)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_a_dead_webhook_of_one_tenant_does_not_delay_another_tenants_alerts(
        tmp_path: Path, store_kind: str, make_store_url: Any) -> None:
    """acme's receiver accepts and never answers, with 200 acme alerts queued for it (at a
    2 s timeout, 16 POSTs at a time, a batch of them holds its sender ~25 s); globex's
    receiver answers at once. globex's alert, raised while acme's are on the wire, arrives
    within seconds: each destination claims and settles on its own."""
    url = make_store_url(store_kind)
    acme = [make_alert(n) for n in range(200)]
    late = make_alert(1000, tenant="globex")
    with silent_listener() as dead, receiving("k") as receiver:
        config = tmp_path / "mot.toml"
        config.write_text(config_text(f'url = "{dead}"\nsecret = "k"\ntenants = ["acme"]',
                                      f'url = "{receiver.url}"\nsecret = "k"\ntenants = ["globex"]'))
        with open_store(url) as services:
            services.alert_outbox.raise_alerts(acme)
        process = subprocess.Popen(
            [str(MOT), "--store", url, "alerts", "deliver", "--follow", "--config", str(config),
             "--timeout", "2", "--poll", "0.1", "--backoff", "60"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with open_store(url) as services:
                deadline = time.monotonic() + 60
                while (services.alert_outbox.counts().pending < 200
                       and time.monotonic() < deadline):
                    time.sleep(0.1)  # the deliverer has queued acme's alerts
                time.sleep(1.0)  # and has them on the wire
                raised = time.monotonic()
                services.alert_outbox.raise_alerts([late])
            while not receiver.counts() and time.monotonic() < raised + 60:
                time.sleep(0.05)
            took = time.monotonic() - raised
            with open_store(url) as services:
                deadline = time.monotonic() + 10
                while (services.alert_outbox.counts("globex").delivered == 0
                       and time.monotonic() < deadline):
                    time.sleep(0.05)
        finally:
            process.kill()  # acme's batch would hold a graceful exit for its timeouts
            process.wait()
        assert set(receiver.counts()) == {late.alert_id}, "globex's alert never arrived"
        assert took < 5, f"globex's alert waited {took:.1f} s for acme's dead receiver"
        with open_store(url) as services:
            [stored] = services.alerts.find(AlertQuery(tenant="globex"))
            assert stored.deliveries == ((receiver.url, "delivered", 1, None),)
