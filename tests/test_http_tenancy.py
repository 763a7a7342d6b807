"""Tokens and tenants: every endpoint tried without a token, with a revoked one, with the wrong
scope, and with another tenant's token; a token never reads nor writes another tenant's data.

SQLite and PostgreSQL, the API over a real store; the tokens' table keeps only hashes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from http_support import Api, api, golden_lines

from mot.bootstrap import open_store
from mot.cli.main import cli
from mot.service.access import AccessError, TenantConflict
from mot.service.ledger import Incoming, LedgerService

READS = ["/v1/relationships", "/v1/reciprocity", "/v1/transitions", "/v1/amplifications",
         "/v1/teams", "/v1/listening", "/v1/responses", "/v1/response-times"]
WRITES = ["/v1/moments", "/v1/webhooks/x", "/v1/webhooks/hubspot"]
MOMENT = {"customer_id": "c9", "occurred_at": "2026-03-01T09:00:00Z", "channel": "email",
          "direction": "outbound", "kind": "answer", "source": {"system": "crm", "id": "r-1"}}


@pytest.fixture
def loaded(store_url: str, golden_path: Path) -> Iterator[Api]:
    with api(store_url) as client:
        assert client.post("acme", b"\n".join(golden_lines(golden_path, "acme"))).status_code == 200
        # The same moments for globex (the explicit moment ids changed, everywhere they appear).
        globex = [line.replace(b'"acme"', b'"globex"').replace(b'"7d0e9a52', b'"8d0e9a52')
                  .replace(b'"0b8f3c1e', b'"1b8f3c1e')
                  for line in golden_lines(golden_path, "acme", corrections=False)]
        assert client.post("globex", b"\n".join(globex)).json()["counts"]["recorded"] == 32
        client.services.projections.project()
        yield client


def reads_of(client: Api, name: str) -> dict[str, Any]:
    return {path: client.get(name, path).json() for path in READS}


def test_no_token_or_a_revoked_one_is_401_everywhere(loaded: Api) -> None:
    client = loaded.client
    for path in [*READS, "/v1/moments/zendesk:z-100"]:
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["www-authenticate"] == "Bearer"
        assert client.get(path, headers=loaded.auth("revoked")).status_code == 401, path
        bogus = {"Authorization": "Bearer mot_" + "A" * 43}
        assert client.get(path, headers=bogus).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Basic eDp5"}).status_code == 401, path
    for path in WRITES:
        for headers in ({}, loaded.auth("revoked")):
            answer = client.post(path, content=orjson.dumps([MOMENT]), headers=headers)
            assert answer.status_code == 401, path
    assert loaded.services.ledger_store.head() == 2 * 34 - 2  # nothing more recorded


def test_scopes_are_enforced_on_every_endpoint(loaded: Api) -> None:
    for path in [*READS, "/v1/moments/zendesk:z-100"]:
        answer = loaded.get("acme_write", path)
        assert answer.status_code == 403, path
        assert answer.json()["detail"] == "this token has no 'read' scope"
        assert loaded.get("acme_read", path).status_code == 200, path
    for path in WRITES:
        answer = loaded.post("acme_read", [MOMENT], path=path)
        assert answer.status_code == 403, path
        assert answer.json()["detail"] == "this token has no 'write' scope"
    assert loaded.post("acme_write", [MOMENT]).json()["counts"] == {"recorded": 1}


def test_reads_are_only_of_the_tokens_tenant(loaded: Api, store_url: str) -> None:
    acme, globex = reads_of(loaded, "acme"), reads_of(loaded, "globex")
    for path in READS:
        assert acme[path], path
        assert {r["tenant"] for r in acme[path]} == {"acme"}, path
        assert {r["tenant"] for r in globex[path]} == {"globex"}, path
        # Naming another tenant is refused; naming one's own is allowed.
        answer = loaded.get("acme", path, tenant="globex")
        assert answer.status_code == 403, path
        assert answer.json()["detail"] == "this token reads only tenant 'acme'"
        assert loaded.get("acme", path, tenant="acme").json() == acme[path]
        # as_of folds only the token's tenant too
        as_of = loaded.get("globex", path, as_of="2030-01-01T00:00:00Z").json()
        assert {r["tenant"] for r in as_of} <= {"globex"}, path
    # The same customers under two tenants, each seen only by its own.
    assert [r["customer_id"] for r in acme["/v1/relationships"]] == \
           [r["customer_id"] for r in globex["/v1/relationships"]]
    everything = json.loads(CliRunner().invoke(
        cli, ["--store", store_url, "query", "teams", "--format", "json", "--no-refresh"]).stdout)
    assert {r["tenant"] for r in everything} == {"acme", "globex"}


def test_moment_history_of_another_tenant_is_404(loaded: Api) -> None:
    mine = loaded.get("globex", "/v1/moments/zendesk:z-100")
    assert mine.status_code == 200
    moment_id = mine.json()[0]["moment"]["moment_id"]
    answer = loaded.get("acme", f"/v1/moments/{moment_id}")
    assert answer.status_code == 404
    assert answer.json()["detail"] == f"no moment {moment_id} in tenant 'acme'"


def test_a_moment_naming_another_tenant_is_rejected_not_stored(loaded: Api) -> None:
    head = loaded.services.ledger_store.head()
    foreign = {**MOMENT, "tenant": "globex", "source": {"system": "crm", "id": "sneaky"}}
    answer = loaded.post("acme", [MOMENT, foreign, {**MOMENT, "tenant": "acme"}])
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [i["outcome"] for i in items] == ["recorded", "rejected", "duplicate"]
    assert items[1]["field"] == "tenant"
    assert "this token writes only tenant 'acme', not 'globex'" in items[1]["reason"]
    assert loaded.services.ledger_store.head() == head + 1
    assert loaded.services.ledger_store.quarantine_count() == 0  # refused, not quarantined


def test_amend_or_retract_of_another_tenants_moment_waits_for_the_tenants_own(loaded: Api) -> None:
    theirs = loaded.get("globex", "/v1/moments/zendesk:z-100").json()
    moment_id = theirs[0]["moment"]["moment_id"]
    unknown = "00000000-0000-4000-8000-000000000001"
    head = loaded.services.ledger_store.head()
    batch = [
        {"type": "amend", "moment_id": moment_id, "set": {"sentiment": -1}, "reason": "x"},
        {"type": "retract", "moment_id": moment_id.upper(), "reason": "x"},
        {"type": "amend", "moment_id": unknown, "set": {"sentiment": -1}, "reason": "x"},
    ]
    answer = loaded.post("acme", batch).json()
    outcomes = [(i["outcome"], i["field"]) for i in answer["items"]]
    assert outcomes == [("quarantined", "moment_id")] * 3
    # The same answer for another tenant's moment and for no moment: nothing leaks.
    assert answer["items"][0]["reason"] == (
        f"moment_id: no recorded moment {moment_id} to be amended (it waits in the quarantine "
        "and applies on its own when the moment is recorded)")
    assert answer["items"][2]["reason"] == answer["items"][0]["reason"].replace(moment_id, unknown)
    assert loaded.services.ledger_store.head() == head
    # They wait for acme's moment of that id, never globex's.
    assert [e.waits_for for e in loaded.services.ledger_store.quarantine()] == [
        ("acme", moment_id), ("acme", moment_id), ("acme", unknown)]
    assert loaded.get("globex", "/v1/moments/zendesk:z-100").json() == theirs
    loaded.services.ledger.replay_quarantine()
    assert loaded.get("globex", "/v1/moments/zendesk:z-100").json() == theirs
    # A moment of acme with globex's explicit id is acme's own moment (ids are scoped by
    # tenant); what waited for it applies to it, in order, before the batch's own amend
    # (which then finds it retracted).
    clash = {**MOMENT, "moment_id": moment_id}
    answer = loaded.post("acme", [clash, {"type": "amend", "moment_id": moment_id,
                                          "set": {"reach": 5}, "reason": "x"}]).json()
    assert [i["outcome"] for i in answer["items"]] == ["recorded", "quarantined"]
    assert "was retracted" in answer["items"][1]["reason"]
    assert loaded.get("globex", "/v1/moments/zendesk:z-100").json() == theirs
    mine = loaded.services.ledger_store.stream(moment_id, "acme")
    assert [type(e).__name__ for e in mine] == ["MomentRecorded", "MomentAmended",
                                                 "MomentRetracted"]
    assert [e.waits_for for e in loaded.services.ledger_store.quarantine()] == [
        ("acme", unknown), None]


def test_the_fence_refuses_inside_the_transaction(store_url: str) -> None:
    """Had another tenant recorded the moment between the check and the write (the race the
    fence is for), the write transaction rolls back."""
    from mot.service.access import GroupCommit, _Fence

    services = open_store(store_url)
    try:
        theirs = services.ledger.record([Incoming(orjson.dumps({**MOMENT, "tenant": "globex"}),
                                                  "test")]).verdicts[0].moment_id
        assert theirs is not None
        amend = orjson.dumps({"type": "amend", "moment_id": theirs, "set": {"reach": 9},
                              "reason": "x"})
        fenced = LedgerService(_Fence(services.ledger_store, "acme", GroupCommit()))
        with pytest.raises(TenantConflict):
            fenced.record([Incoming(amend, "test")])
        assert len(services.ledger_store.stream(theirs)) == 1
        assert services.ledger_store.quarantine_count() == 0
        # The fence lets the tenant's own moments through.
        own = LedgerService(_Fence(services.ledger_store, "globex", GroupCommit()))
        assert own.record([Incoming(amend, "test")]).verdicts[0].outcome.value == "amended"
        # Nor does the fence name another tenant.
        assert services.ledger_store.tenants() == ["globex"]
        assert _Fence(services.ledger_store, "acme", GroupCommit()).tenants() == []
        assert _Fence(services.ledger_store, "globex", GroupCommit()).tenants() == ["globex"]
    finally:
        services.close()


def test_webhooks_with_a_token_write_to_the_tokens_tenant(loaded: Api) -> None:
    post = {"data": [{"id": "1790000000000000001", "text": "@acme love it", "author_id": "42",
                      "created_at": "2026-03-01T10:00:00.000Z",
                      "public_metrics": {"impression_count": 10}}],
            "includes": {"users": [{"id": "42", "username": "fan", "public_metrics": {
                "followers_count": 100}}]}}
    answer = loaded.post("globex", orjson.dumps(post), path="/v1/webhooks/x")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tenant"] == "globex"
    recorded = [i for i in body["items"] if i["outcome"] == "recorded"]
    assert recorded, body
    history = loaded.get("globex", f"/v1/moments/{recorded[0]['moment_id']}").json()
    assert history[0]["moment"]["tenant"] == "globex"
    assert loaded.get("acme", f"/v1/moments/{recorded[0]['moment_id']}").status_code == 404


def test_tokens_are_stored_hashed_listed_and_revoked(store_url: str) -> None:
    services = open_store(store_url)
    try:
        access = services.access
        stored, token = access.create("acme", "write, READ", label="ci")
        assert token.startswith("mot_") and len(token) > 40
        assert stored.scopes == {"read", "write"} and stored.label == "ci"
        assert stored.hash != token and token not in repr(access.list())
        principal = access.authenticate(token)
        assert principal is not None and principal.tenant == "acme"
        assert access.authenticate(token + "x") is None
        assert access.authenticate("") is None
        revoked = access.revoke(stored.id)
        assert revoked.revoked_at is not None
        assert access.authenticate(token) is None
        assert access.revoke(stored.id).revoked_at == revoked.revoked_at  # harmless twice
        with pytest.raises(AccessError, match="no token 999"):
            access.revoke(999)
        with pytest.raises(AccessError, match="unknown scope root"):
            access.create("acme", "read,root")
        with pytest.raises(AccessError, match="at least one scope: read, write and/or admin"):
            access.create("acme", " , ")
        with pytest.raises(AccessError, match="tenant must be"):
            access.create("", "read")
    finally:
        services.close()


def test_token_commands(store_url: str) -> None:
    runner = CliRunner()

    def mot(*args: str) -> Any:
        return runner.invoke(cli, ["--store", store_url, *args])

    created = mot("token", "create", "--tenant", "acme", "--scope", "write,read", "--label", "etl")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("mot_")
    assert "not shown again" in created.stderr
    listed = json.loads(mot("token", "list", "--format", "json").stdout)
    assert listed == [{"id": 1, "tenant": "acme", "scopes": "read,write", "label": "etl",
                       "created_at": listed[0]["created_at"], "revoked_at": None}]
    assert token not in mot("token", "list", "--format", "json").stdout
    assert mot("token", "revoke", "1").exit_code == 0
    assert json.loads(mot("token", "list", "--format", "json").stdout)[0]["revoked_at"]
    missing = mot("token", "revoke", "7")
    assert missing.exit_code == 1 and "no token 7" in missing.output
    bad = mot("token", "create", "--tenant", "acme", "--scope", "root")
    assert bad.exit_code == 2 and "unknown scope root" in bad.output


def test_a_token_for_a_tenant_the_store_does_not_know_is_created_with_a_warning(
        store_url: str) -> None:
    """`mot token create --tenant acm` (acme misspelt) gave a token whose writes all went to
    a new tenant acm, without a word. A new tenant starts with its token, so it is still
    created, and the warning names the known tenants and how to take the token back."""
    runner = CliRunner()

    def mot(*args: str, **kwargs: Any) -> Any:
        return runner.invoke(cli, ["--store", store_url, *args], **kwargs)

    first = mot("token", "create", "--tenant", "acme")  # an empty store: nothing to warn of
    assert first.exit_code == 0 and "warning" not in first.stderr
    line = {"tenant": "acme", "customer_id": "c-1", "occurred_at": "2026-03-01T09:00:00Z",
            "channel": "email", "direction": "inbound", "kind": "question",
            "function": "service", "source": {"system": "zendesk", "id": "ZD-1"}}
    assert mot("import", "-q", "-", input=json.dumps(line) + "\n").exit_code == 0
    known = mot("token", "create", "--tenant", "acme")
    assert known.exit_code == 0 and "warning" not in known.stderr
    typo = mot("token", "create", "--tenant", "acm", "--scope", "read,write")
    assert typo.exit_code == 0 and typo.stdout.startswith("mot_")
    assert typo.stderr.endswith(
        "mot: warning: tenant 'acm' has recorded nothing in this store (tenants: acme): the"
        " token reads and writes 'acm' alone; if the name is a typo, `mot token revoke 3`\n")


def test_a_fix_of_a_message_quarantined_over_http_stays_in_the_tokens_tenant(
        store_url: str, tmp_path: Path) -> None:
    """A message sent with acme's token names no tenant (it gets the token's); quarantined,
    `mot quarantine show` prints its raw bytes, and the correction a user wrote from them
    (no tenant either) was recorded in tenant "default". It is acme's now, as sent; a
    correction naming a tenant keeps it."""
    moment = {"customer_id": "zz-1", "occurred_at": "2026-06-01T09:30:00Z",
              "channel": "emial", "direction": "inbound", "kind": "question",
              "function": "service", "source": {"system": "z", "id": "zz1"}}
    with api(store_url) as client:
        answer = client.post("acme", [moment, {**moment, "source": {"system": "z", "id": "zz2"}}])
        assert answer.json()["counts"] == {"quarantined": 2}
    runner = CliRunner()

    def mot(*args: str, **kwargs: Any) -> Any:
        result = runner.invoke(cli, ["--store", store_url, *args], **kwargs)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    first, second = json.loads(mot("quarantine", "list", "--format", "json").stdout)
    fixed = json.dumps({**moment, "channel": "email"})
    mot("quarantine", "fix", str(first["id"]), "-", input=fixed)
    named = json.dumps({**moment, "channel": "email", "tenant": "globex",
                        "source": {"system": "z", "id": "zz2"}})
    mot("quarantine", "fix", str(second["id"]), "-", input=named)
    mot("project", "-q")
    tenants = sorted((r["tenant"], r["customer_id"])
                     for r in json.loads(mot("query", "relationships", "--format", "json").stdout))
    assert tenants == [("acme", "zz-1"), ("globex", "zz-1")]


def test_another_tenants_admin_can_neither_count_nor_purge_what_this_tenant_sent(
        store_url: str) -> None:
    """Items of acme's batch that are no wire message (a JSON text, an object without wire
    fields), and a webhook's record its mapping could not map, were quarantined as any
    tenant's: globex's admin token's dry run of an id acme
    sent counted them (`quarantined: 1`, no warning: a probe of acme's ids) and its erasure
    purged acme's entries. What a token sent is its tenant's: only acme's erasure reads it."""
    with api(store_url) as client:
        for tenant in ("acme", "globex"):
            _, admin = client.services.access.create(tenant, "admin", label="dpo")
            client.tokens[f"{tenant}_admin"] = admin
        sent = client.post("acme", ["x:zz-target", {"note": "x:zz-target"}])
        assert [i["outcome"] for i in sent.json()["items"]] == ["quarantined"] * 2, sent.text
        # A vendor's record its mapping could not map, by webhook: acme's as well.
        hook = client.post("acme", b'{"note": "x:zz-target"}', path="/v1/webhooks/x")
        assert [i["outcome"] for i in hook.json()["items"]] == ["quarantined"], hook.text
        body = {"customer_id": "x:zz-target", "reason": "GDPR request 2026-122"}
        probe = client.post("globex_admin", orjson.dumps({**body, "dry_run": True}),
                            path="/v1/erasures").json()
        assert probe["quarantined"] == 0 and probe["warning"] is not None, probe
        assert client.post("globex_admin", orjson.dumps(body),
                           path="/v1/erasures").status_code == 200
        assert len(client.services.quarantine.entries()) == 3
        # The same bytes from globex too: either tenant's erasure may purge them now.
        client.post("globex", ["x:zz-target"])
        mine = client.post("acme_admin", orjson.dumps({**body, "dry_run": True}),
                           path="/v1/erasures").json()
        assert mine["quarantined"] == 3 and mine["warning"] is None, mine
        client.post("acme_admin", orjson.dumps(body), path="/v1/erasures")
        assert client.services.quarantine.entries() == []


def test_batches_waiting_for_a_commit_are_written_in_one_and_answered_each(
        services: Any) -> None:
    """While one transaction is written, the batches that come wait and then go together into
    the next (group commit): each answered its own outcomes, a moment sent by two of them
    recorded once. A batch that fails has the group rolled back and the others written alone."""
    import threading
    import time

    from mot.service.access import Submitted, TenantLedger

    ledger = TenantLedger(services.ledger_store)
    writers = ledger.writers
    gate = threading.Event()

    def submitted(source_id: str, tenant: str | None = None) -> list[Submitted]:
        data = {**MOMENT, "source": {"system": "crm", "id": source_id}}
        if tenant is not None:
            data["tenant"] = tenant
        return [Submitted(orjson.dumps(data), data, f"test:{source_id}")]

    def run_group(extra: list[tuple[str, Any]]) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        holder = threading.Thread(target=writers.run, args=(gate.wait,))
        holder.start()
        while not writers._busy:  # the holder's write (waiting for the gate) has the turn
            time.sleep(0.001)

        def send(name: str, work: Any) -> None:
            try:
                answers[name] = work()
            except Exception as error:
                answers[name] = error

        threads = [threading.Thread(target=send, args=item) for item in extra]
        for thread in threads:
            thread.start()
        while len(writers._waiting) < len(extra):
            time.sleep(0.001)
        before = writers.commits
        gate.set()
        for thread in [holder, *threads]:
            thread.join()
        gate.clear()
        answers["commits"] = writers.commits - before
        return answers

    acme = [(f"acme-{i}", lambda i=i: ledger.record("acme", submitted(f"r-{i}"))) for i in range(3)]
    twice = [("again", lambda: ledger.record("acme", submitted("r-0")))]
    globex = [("globex", lambda: ledger.record("globex", submitted("r-9")))]
    answers = run_group(acme + twice + globex)
    assert answers["commits"] == 2  # the holder's, then the five that waited in one
    outcomes = [answers[name][0].outcome for name in ("acme-0", "acme-1", "acme-2", "globex")]
    assert outcomes == ["recorded"] * 4
    assert answers["again"][0].outcome == "duplicate"
    assert answers["again"][0].moment_id == answers["acme-0"][0].moment_id
    assert services.ledger_store.tenants() == ["acme", "globex"]

    def fails() -> None:
        raise ValueError("this batch fails")

    failing = [("fails", lambda: writers.run(fails)),
               ("acme-5", lambda: ledger.record("acme", submitted("r-5"))),
               ("again-1", lambda: ledger.record("acme", submitted("r-1")))]
    answers = run_group(failing)
    assert answers["commits"] == 4  # the holder's; the group rolled back whole, each alone
    assert isinstance(answers["fails"], ValueError)
    assert answers["acme-5"][0].outcome == "recorded"
    assert answers["again-1"][0].outcome == "duplicate"
    assert len(services.ledger_store.stream(answers["acme-5"][0].moment_id)) == 1
