"""The `[targets]` part of mot.toml (SPEC §3.5 overdue): durations, functions, tenants, and the
one file every part of mot reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mot.adapters.vendors import VendorConfig
from mot.service.config import ConfigError
from mot.service.targets import (
    Targets,
    format_duration,
    load_targets,
    parse_duration,
    targets_from_dict,
)

MOT_TOML = """\
tenant = "acme"

[hubspot]
owners = { "52550153" = "sales" }

[webhooks.zendesk]
secret = "s"

[alerts]
window = "72h"

[targets.first_response]
service = "4h"
logistics = "1d"
product = "90m"

[tenants.acme.targets.first_response]
service = "3600s"

[tenants.acme.alerts]
negative_reach = 500

[tenants.globex.alerts]
window = "1d"
"""


@pytest.mark.parametrize(("text", "seconds"), [
    ("4h", 4 * 3600), ("1d", 86400), ("90m", 5400), ("3600s", 3600), (" 2h ", 7200), ("0m", 0),
])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text, "targets.first_response.service") == seconds


@pytest.mark.parametrize("bad", ["4x", "4", "h", "1.5h", "-1h", "1h30m", "", 4, None, "4 h"])
def test_a_bad_duration_names_the_key(bad: Any) -> None:
    with pytest.raises(ConfigError) as error:
        parse_duration(bad, "targets.first_response.service")
    assert str(error.value) == (f"targets.first_response.service: {bad!r} is not a duration "
                                "like 4h, 90m, 1d")


@pytest.mark.parametrize("seconds", [0, 59, 60, 5400, 3600, 86400, 90000])
def test_format_duration_reads_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds), "x") == seconds


def test_one_mot_toml_for_vendors_targets_and_alerts(tmp_path: Path) -> None:
    path = tmp_path / "mot.toml"
    path.write_text(MOT_TOML)
    assert VendorConfig.load(path)["hubspot"].function("owners", "52550153") == "sales"
    targets = load_targets(path)
    assert targets.first_response == {"service": 14400, "logistics": 86400, "product": 5400}
    assert targets.first_response_for("acme") == {"service": 3600, "logistics": 86400,
                                                  "product": 5400}
    assert targets.first_response_for("globex") == targets.first_response
    assert targets.configured
    assert load_targets(None) == Targets() and not Targets().configured


@pytest.mark.parametrize(("data", "message"), [
    ({"targets": {"first_response": {"service": "4x"}}},
     "mot.toml: targets.first_response.service: '4x' is not a duration like 4h, 90m, 1d"),
    ({"targets": {"first_response": {"support": "4h"}}},
     "mot.toml: targets.first_response.support: 'support' is not a function (expected one of "
     "service, product, sales, logistics, hr, marketing, leadership, other)"),
    ({"targets": {"first_respons": {"service": "4h"}}},
     "mot.toml: targets: unknown key 'first_respons' (did you mean 'first_response'?)"),
    ({"targets": {"first_response": "4h"}},
     "mot.toml: targets.first_response: expected a table of function = duration"),
    ({"targets": "4h"}, "mot.toml: targets: expected a table"),
    ({"tenants": {"acme": {"targets": {"first_response": {"logistics": "one day"}}}}},
     "mot.toml: tenants.acme.targets.first_response.logistics: 'one day' is not a duration"),
    ({"tenants": {"acme": {"target": {}}}},
     "mot.toml: tenants.acme: unknown key 'target' (did you mean 'targets'?)"),
    ({"tenants": {"acme": "x"}}, "mot.toml: tenants.acme: expected a table"),
    ({"tenants": []}, "mot.toml: tenants: expected tables"),
])
def test_bad_targets_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        targets_from_dict(data)
    assert str(error.value).startswith(message)


def test_the_vendor_parser_leaves_targets_alerts_and_tenants_to_their_owners() -> None:
    config = VendorConfig.from_dict({"tenant": "acme", "targets": {"first_response": {}},
                                     "alerts": {"window": "72h"}, "tenants": {"acme": {}}})
    assert config.tenant == "acme"
    with pytest.raises(ConfigError, match="unknown key 'target' \\(did you mean 'targets'\\?\\)"):
        VendorConfig.from_dict({"target": {}})
