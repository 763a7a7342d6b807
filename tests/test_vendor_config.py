"""The vendor configuration file, the registry, and the helpers every mapping shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mot.adapters.sources.vendor import VendorStats, map_value
from mot.adapters.vendors import SOURCES, ConfigError, Unmappable, VendorConfig
from mot.adapters.vendors.base import timestamp
from mot.cli.ledger_commands import VENDOR_NAMES

FIXTURES = Path(__file__).parent / "fixtures" / "vendors"


def test_registry() -> None:
    assert list(SOURCES) == VENDOR_NAMES == ["hubspot", "salesforce", "zendesk", "mentions", "x"]
    assert {name: source.formats for name, source in SOURCES.items()} == {
        "hubspot": ("jsonl",), "salesforce": ("csv", "jsonl"), "zendesk": ("jsonl",),
        "mentions": ("csv", "jsonl"), "x": ("jsonl",)}


def test_defaults_without_a_file() -> None:
    config = VendorConfig()
    assert config["hubspot"].tenant == "default"
    assert [config[name].default_function for name in SOURCES] == [
        "sales", "sales", "service", "marketing", "marketing"]
    assert config["zendesk"].customer("5001") == "zendesk:5001"
    assert config["mentions"].system == "mentions"


def test_the_fixture_config_loads() -> None:
    config = VendorConfig.load(FIXTURES / "mot.toml")
    assert config.tenant == "acme"
    assert config["hubspot"].function("owners", "61112004") == "service"
    assert config["hubspot"].kind("meeting", "outbound", "other") == ("help", None)
    assert config["salesforce"].function("owners", "00G5g00000Qu3UeEAJ") == "service"  # a queue
    assert config["x"].function("handles", "@AcmeHelp") == "service"
    assert config["mentions"].has("handles", "@acme")
    assert config["mentions"].columns["reach"] == ("Reach (new)",)


def test_section_tenant_and_prefix_override() -> None:
    config = VendorConfig.from_dict({"tenant": "acme",
                                     "zendesk": {"tenant": "acme-eu", "customer_prefix": ""}})
    assert (config["zendesk"].tenant, config["hubspot"].tenant) == ("acme-eu", "acme")
    assert config["zendesk"].customer("5001") == "5001"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tenat": "acme"}, "unknown key 'tenat' (did you mean 'tenant'?)"),
        ({"hubspot": {"owner": {"1": "sales"}}}, "unknown key 'owner' (did you mean 'owners'?)"),
        ({"hubspot": {"owners": {"1": "sale"}}}, "'sale' is not a function"),
        ({"zendesk": {"default_function": "support"}}, "'support' is not a function"),
        ({"hubspot": {"kinds": {"call.outbound": "complaint"}}}, "not a kind of direction 'outbound'"),
        ({"hubspot": {"kinds": {"fax.outbound": "other"}}}, "not ACTIVITY.DIRECTION"),
        ({"hubspot": {"kinds": {"call.outbound": "question:meeting"}}}, "only \"ask:TYPE\""),
        ({"x": {"kinds": {"post.outbound": "answer"}}}, "cannot be set"),
        ({"mentions": {"sentiment_scale": 0}}, "positive number"),
        ({"mentions": {"sentiment_labels": {"good": 2}}}, "in [-1, 1]"),
        ({"mentions": {"columns": {"author_name": "Author"}}}, "unknown field 'author_name'"),
        ({"mentions": {"timezone": "Mars/Olympus"}}, "unknown time zone"),
        ({"salesforce": {"closed_statuses": "Completed"}}, "list of Status values"),
        ({"tenant": ""}, "tenant name"),
        ({"x": ["acme"]}, "[x] must be a table"),
    ],
)
def test_config_errors_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        VendorConfig.from_dict(data, "mot.toml")
    assert message in str(error.value)
    assert str(error.value).startswith("mot.toml:")


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        VendorConfig.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("tenant = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        VendorConfig.load(bad)


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        ("2025-04-01T09:41:07.000+0000", {}, "2025-04-01T09:41:07Z"),
        ("2025-04-01T11:41:07+02:00", {}, "2025-04-01T09:41:07Z"),
        ("2025-04-01T09:41:07.123Z", {}, "2025-04-01T09:41:07.123000Z"),
        ("2025-04-01", {}, "2025-04-01T00:00:00Z"),
        ("1741014000000", {"epoch_ms": True}, "2025-03-03T15:00:00Z"),
        (1741014000000, {"epoch_ms": True}, "2025-03-03T15:00:00Z"),
        ("2025-06-02 08:12:00.0", {"naive": __import__("datetime").UTC}, "2025-06-02T08:12:00Z"),
    ],
)
def test_timestamps(value: Any, kwargs: dict[str, Any], expected: str) -> None:
    assert timestamp(value, "t", **kwargs) == expected


@pytest.mark.parametrize("value", [None, "", "2025-06-02 08:12:00", "yesterday", True])
def test_timestamps_that_cannot_be_read(value: Any) -> None:
    with pytest.raises(Unmappable):
        timestamp(value, "t")


def test_map_value_origins_raw_and_problems() -> None:
    """One record per value keeps the raw bytes; several get `#n` origins and their own JSON."""
    config = VendorConfig()
    stats = VendorStats("salesforce")
    task = {"attributes": {"type": "Task"}, "Id": "00T5g00000Ab1C2EAJ", "WhoId": "0035g00000Kq1AaAAJ",
            "Status": "Completed", "CreatedDate": "2025-04-01T09:41:07.000+0000", "TaskSubtype": "Call"}
    [item] = map_value(SOURCES["salesforce"], task, config, "f.jsonl:1", b"RAW", stats)
    assert (item.raw, item.origin, item.problem) == (b"RAW", "f.jsonl:1", None)
    page = {"records": [task, {**task, "WhoId": None}, {**task, "IsClosed": False}]}
    first, second = map_value(SOURCES["salesforce"], page, config, "f.jsonl:2", b"PAGE", stats)
    assert (first.origin, second.origin) == ("f.jsonl:2#1", "f.jsonl:2#2")
    assert second.payload is None and second.problem is not None and "no WhoId" in second.problem
    assert b"00T5g00000Ab1C2EAJ" in second.raw
    assert stats.as_dict() == {"source": "salesforce", "records": 4, "messages": 2, "links": 0,
                               "unmappable": 1, "not_moments": 1,
                               "not_moment_reasons": {"open task (Status 'Completed'): a moment once it "
                                                      "is completed": 1}}
    [odd] = map_value(SOURCES["salesforce"], 42, config, "f.jsonl:3", None, stats)
    assert odd.problem == "salesforce: expected a JSON object or array, got int"


def test_the_example_in_docs_sources_md_loads() -> None:
    """The configuration example of docs/sources.md is a valid file (the docs stay true)."""
    import tomllib

    text = (Path(__file__).parents[1] / "docs" / "sources.md").read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    config = VendorConfig.from_dict(tomllib.loads(example), "docs/sources.md")
    assert config["hubspot"].kind("meeting", "outbound", "other") == ("ask", "meeting")
    assert config["mentions"].sentiment_scale == 100
    assert config["salesforce"].function("owners", "00G5g00000Qu3UeEAJ") == "service"
