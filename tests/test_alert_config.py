"""The `[alerts]` part of mot.toml: what it configures, and one clear error per bad key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from process_support import run

from mot.adapters.vendors.config import VendorConfig
from mot.service.alert_config import alert_config, load_alert_config
from mot.service.config import ConfigError

HOUR = 3600 * 1_000_000

FULL = """
tenant = "acme"
[hubspot]
owners = { "52550153" = "sales" }

[alerts]
window = "48h"
negative_reach = 500

[[alerts.webhooks]]
url = "https://hooks.example.com/mot"
secret = "s3cret"
rules = ["detractor", "overdue"]
tenants = ["acme"]

[[alerts.webhooks]]
url = "https://hooks.slack.com/services/T/B/X"
format = "slack"
insecure = true

[alerts.kafka]
topic = "mot.alerts"
bootstrap = "127.0.0.1:9092"

[tenants.globex.alerts]
window = "1d"
negative_reach = 50

[targets.first_response]
service = "4h"
"""


def test_the_full_example_configures_thresholds_destinations_and_tenants() -> None:
    config = alert_config(tomllib.loads(FULL), "mot.toml")
    assert config.policy.window("acme") == 48 * HOUR
    assert config.policy.window("globex") == 24 * HOUR
    assert (config.policy.reach("acme"), config.policy.reach("globex")) == (500, 50)
    hook, slack = config.webhooks
    assert (hook.url, hook.secret, hook.format) == ("https://hooks.example.com/mot", "s3cret", "json")
    assert hook.filters.wants("detractor", "acme") and not hook.filters.wants("stop_asking", "acme")
    assert not hook.filters.wants("detractor", "globex")
    assert (slack.format, slack.secret) == ("slack", None)
    assert slack.filters.wants("stop_asking", "anyone")
    assert config.kafka is not None and (config.kafka.topic, config.kafka.bootstrap) == (
        "mot.alerts", "127.0.0.1:9092")
    # The same file still configures the vendors: their parser accepts (and leaves) these sections.
    assert VendorConfig.from_dict(tomllib.loads(FULL), "mot.toml").tenant == "acme"


def test_no_alerts_section_means_the_defaults() -> None:
    config = alert_config({})
    assert (config.policy.window("acme"), config.policy.reach("acme")) == (72 * HOUR, 1000)
    assert config.destinations == ()
    assert config.overdue_check_s == 30


def test_the_overdue_check_runs_as_often_as_mot_toml_says(tmp_path: Path) -> None:
    """`[alerts] overdue_check`, read at each run (a changed file applies from the next)."""
    from mot.adapters.stores.memory_alerts import MemoryAlertOutbox
    from mot.service.alerting import OverdueCheck

    config = tmp_path / "mot.toml"
    config.write_text('[alerts]\noverdue_check = "5m"\n')
    now = [1000.0]
    check = OverdueCheck(MemoryAlertOutbox(), lambda: load_alert_config(config),
                         clock=lambda: now[0])
    assert check.due()
    check.run()
    assert check.every_s == 300
    now[0] += 299
    assert not check.due()
    now[0] += 1
    assert check.due()
    config.write_text('[alerts]\noverdue_check = "10s"\n')
    check.run()
    now[0] += 10
    assert check.due() and check.every_s == 10
    fixed = OverdueCheck(MemoryAlertOutbox(), lambda: load_alert_config(config), every_s=2,
                         clock=lambda: now[0])
    fixed.run()
    assert fixed.every_s == 2  # given by the caller: the file does not change it


@pytest.mark.parametrize(("text", "message"), [
    ('[[alerts.webhooks]]\nurl = "https://h.example/x"\nsecret = "s"\nrules = ["detracter"]',
     "mot.toml: [[alerts.webhooks]] #1 rules: unknown rule 'detracter' (did you mean 'detractor'?)"),
    ('[[alerts.webhooks]]\nurl = "ftp://h.example/x"\nsecret = "s"',
     "mot.toml: [[alerts.webhooks]] #1 url: expected an http:// or https:// URL with a host, "
     "not 'ftp://h.example/x'"),
    ('[[alerts.webhooks]]\nurl = "https://h.example/x"',
     "mot.toml: [[alerts.webhooks]] #1 secret: required"),
    ('[alerts]\nwindow = "72 hours"',
     "mot.toml: [alerts] window: '72 hours' is not a duration like 4h, 90m, 1d"),
    ('[alerts]\nwindw = "72h"', "mot.toml: [alerts] unknown key 'windw' (did you mean 'window'?)"),
    ('[alerts]\nnegative_reach = -1', "mot.toml: [alerts] negative_reach: expected a whole number"),
    ('[[alerts.webhooks]]\nurl = "https://h.example/x"\nsecret = "s"\nformat = "teams"',
     "mot.toml: [[alerts.webhooks]] #1 format: expected \"json\" or \"slack\", not 'teams'"),
    ('[alerts.kafka]\ntopic = "no spaces"', "mot.toml: [alerts.kafka] topic: expected a Kafka topic"),
    ('[tenants.acme.alerts]\nwindow = "soon"',
     "mot.toml: [tenants.acme.alerts] window: 'soon' is not a duration"),
    ('[alerts]\nwindow = "0h"', "mot.toml: [alerts] window: '0h' is no window"),
    ('[alerts]\noverdue_check = "often"',
     "mot.toml: [alerts] overdue_check: 'often' is not a duration like 4h, 90m, 1d"),
    ('[alerts]\noverdue_check = "0s"', "mot.toml: [alerts] overdue_check: '0s' is no interval"),
    ('[tenants.acme]\nalert = {}', "mot.toml: [tenants.acme] unknown key 'alert' (did you mean 'alerts'?)"),
])
def test_bad_configuration_is_one_error_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        alert_config(tomllib.loads(text), "mot.toml")
    assert str(error.value).startswith(message)


def test_the_file_is_mot_config_else_mot_toml_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MOT_CONFIG", raising=False)
    assert load_alert_config().path is None
    (tmp_path / "mot.toml").write_text('[alerts]\nnegative_reach = 7\n')
    assert load_alert_config().policy.negative_reach == 7
    other = tmp_path / "other.toml"
    other.write_text('[alerts]\nnegative_reach = 9\n')
    monkeypatch.setenv("MOT_CONFIG", str(other))
    assert load_alert_config().policy.negative_reach == 9
    other.write_text('[alerts\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_alert_config()


def test_mot_serve_refuses_a_bad_alerts_section_at_start(tmp_path: Path) -> None:
    import sys

    config = tmp_path / "mot.toml"
    config.write_text('[alerts]\nwindow = "soon"\n')
    mot = Path(sys.executable).parent / "mot"
    done = run([str(mot), "--store", str(tmp_path / "mot.db"), "serve", "--port", "0",
                "--config", str(config)], text=True, timeout=120, exits=1)
    assert f"{config}: [alerts] window: 'soon' is not a duration" in done.stderr


def test_the_overdue_check_says_once_which_targets_can_never_raise(tmp_path: Path) -> None:
    """A target as long as the alert window or longer never raises `overdue` (SPEC §3.6: the
    request must have occurred within the window): the long-running commands say so, once."""
    from mot.adapters.stores.memory_alerts import MemoryAlertOutbox
    from mot.service.alerting import OverdueCheck

    config = tmp_path / "mot.toml"
    config.write_text('[alerts]\nwindow = "24h"\n[targets.first_response]\nservice = "4h"\n'
                      'sales = "2d"\n[tenants.acme.targets.first_response]\nservice = "1d"\n')
    heard: list[str] = []
    check = OverdueCheck(MemoryAlertOutbox(), lambda: load_alert_config(config),
                         warn=heard.append)
    check.run()
    check.run()
    assert heard == [
        "warning: the first-response target for sales is as long as its alert window (24 h) or "
        "longer: a request raises `overdue` only while it occurred within the window (SPEC §3.6), "
        "so these never will; set [alerts] window longer than the target",
        "warning: tenant acme's first-response target for sales is as long as its alert window "
        "(24 h) or longer: a request raises `overdue` only while it occurred within the window "
        "(SPEC §3.6), so these never will; set [alerts] window longer than the target",
        "warning: tenant acme's first-response target for service is as long as its alert window "
        "(24 h) or longer: a request raises `overdue` only while it occurred within the window "
        "(SPEC §3.6), so these never will; set [alerts] window longer than the target",
    ]
