"""docker/: no Docker engine runs here, so the files are checked for what a run would need.

The compose file parses; every mot service's command (and healthcheck) is a real
`mot` command with real options, parsed by the real click command tree; the
store URL and the bootstrap servers name services, ports and credentials that
exist; every long-running service has a healthcheck and a restart policy; Kafka
runs in KRaft mode. The Dockerfile is multi-stage, copies every package folder
that pyproject.toml installs, and runs as a non-root user with `mot` as entry point.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import pytest
import yaml

from mot.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def mot_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the image built from docker/Dockerfile."""
    return {name: s for name, s in compose["services"].items()
            if isinstance(s.get("build"), dict) and s["build"].get("dockerfile") == "docker/Dockerfile"}


def parse_mot(args: list[str]) -> click.Context:
    """Parse `mot ARGS` with the real command tree, down to the leaf command; raise on any error."""
    ctx = cli.make_context("mot", list(args))
    command: click.Command = cli
    while isinstance(command, click.Group):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            raise click.UsageError(f"{ctx.command_path}: no command given")
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
    assert not ctx.args, f"unexpected arguments: {ctx.args}"
    return ctx


def test_parse_mot_rejects_what_mot_rejects() -> None:
    parse_mot(["kafka", "ingest", "--topic", "t", "--group", "g"])
    for bad in (["kafka", "ingest", "--topic", "t"],  # --group is required
                ["kafka", "ingest", "--topic", "t", "--group", "g", "--no-such-option"],
                ["kafka", "publish", "--follow", "extra"],
                ["kafka", "nosuch"], ["kafka"]):
        with pytest.raises(click.UsageError):
            parse_mot(bad)


def test_every_mot_service_runs_a_real_mot_command(compose: dict[str, Any]) -> None:
    services = mot_services(compose)
    assert {"ingest", "project", "publish"} <= set(services)
    commands = {}
    for name, service in services.items():
        command = service["command"]
        assert isinstance(command, list), f"{name}: use the exec form (a list)"
        ctx = parse_mot(command)
        commands[name] = ctx
        check = service["healthcheck"]["test"]
        assert check[0] == "CMD" and check[1] == "mot", name
        parse_mot(check[2:])
    assert commands["ingest"].command_path == "mot kafka ingest"
    assert commands["ingest"].params["dlq_topic"] == "moments.dlq"
    assert commands["project"].command_path == "mot project" and commands["project"].params["follow"]
    publish = commands["publish"]
    assert publish.command_path == "mot kafka publish" and publish.params["follow"]
    assert publish.params["topic_prefix"] == "mot."
    # A separate `project --follow` keeps the projections current: the publisher need not.
    assert publish.params["refresh"] is False


def test_environment_and_ports_line_up(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]["environment"]
    kafka = services["kafka"]["environment"]
    listeners = dict(re.match(r"(\w+)://([\w.-]*):(\d+)", item).groups()[::2]  # type: ignore[union-attr]
                     for item in kafka["KAFKA_LISTENERS"].split(","))
    advertised = {re.match(r"(\w+)://", item).group(1): item.split("://")[1]  # type: ignore[union-attr]
                  for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, service in mot_services(compose).items():
        env = service["environment"]
        store = urlparse(env["MOT_STORE"])
        assert store.scheme == "postgresql", name
        assert store.hostname == "postgres" and store.hostname in services
        assert (store.port or 5432) == 5432
        assert store.username == postgres["POSTGRES_USER"]
        assert store.password == postgres["POSTGRES_PASSWORD"]
        assert store.path.lstrip("/") == postgres["POSTGRES_DB"]
        # The bootstrap servers are the in-network listener, advertised under the service's name.
        host, port = env["MOT_KAFKA_BOOTSTRAP"].split(":")
        assert host == "kafka" and host in services
        listener = next(n for n, p in listeners.items() if p == port)
        assert advertised[listener] == f"{host}:{port}", name
        depends = service["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["kafka"]["condition"] == "service_healthy"
        assert set(depends) <= set(services)
    # The host's listener is published on the port it advertises.
    host_listener = next(a for a in advertised.values() if a.startswith("localhost:"))
    port = host_listener.split(":")[1]
    assert f"{port}:{port}" in services["kafka"]["ports"]
    assert listeners["HOST"] == port
    # The envvars the services set are the ones mot reads.
    assert any(p.envvar == "MOT_STORE" for p in cli.params)
    ingest = parse_mot(["kafka", "ingest", "--topic", "t", "--group", "g"]).command
    assert any(p.envvar == "MOT_KAFKA_BOOTSTRAP" for p in ingest.params)


def test_kafka_runs_in_kraft_mode_and_every_service_is_looked_after(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert services["postgres"]["image"].startswith("postgres:")
    for name, service in services.items():
        if service.get("restart") == "no":  # a one-shot job (creating topics)
            assert name == "topics"
            continue
        assert service["restart"] in ("always", "unless-stopped", "on-failure"), name
        assert service["healthcheck"]["test"], name
    for volume in ("kafka-data", "pg-data"):
        assert volume in compose["volumes"]
    # The topics the ingest service reads and dead-letters to are created.
    topics = " ".join(services["topics"]["command"])
    ingest = parse_mot(mot_services(compose)["ingest"]["command"])
    for topic in (*ingest.params["topics"], ingest.params["dlq_topic"]):
        assert f"--topic {topic} " in topics


def test_dockerfile_is_multi_stage_non_root_and_copies_every_package() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    instructions = [line.strip() for line in text.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert len(stages) >= 2 and all("-slim" in s for s in stages)
    final = instructions[instructions.index(stages[-1]):]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entrypoint = next(line for line in final if line.startswith("ENTRYPOINT "))
    assert entrypoint == 'ENTRYPOINT ["mot"]'
    copied = {line.split()[1] for line in instructions if line.startswith("COPY ") and "--from" not in line}
    copied = {part for item in copied for part in item.split()}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = {path.split("/")[0] for path in pyproject["tool"]["setuptools"]["package-dir"].values()}
    for folder in folders:
        assert folder in copied, f"the Dockerfile does not copy {folder}/"
        assert (ROOT / folder).is_dir()
    assert "pyproject.toml" in copied
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for folder in folders:
        assert f"!{folder}/" in ignore, f"{folder}/ is left out of the build context"
