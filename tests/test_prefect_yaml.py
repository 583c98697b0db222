"""prefect.yaml, checked with Prefect's own loaders and schemas (no server needed).

`prefect deploy --all` against a real server is tests/test_prefect_server.py; this file catches
the cheap mistakes first: an entrypoint that does not import, a schedule Prefect would reject or
read differently, parameters the flow would refuse, a deployment on another work pool.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parent.parent
PREFECT_YAML = REPO / "prefect.yaml"
RAW = PREFECT_YAML.read_text(encoding="utf-8")
CONFIG = yaml.safe_load(RAW)
DEPLOYMENTS = {d["name"]: d for d in CONFIG["deployments"]}
EXPECTED = {  # deployment -> flow name (`prefect deployment run FLOW/DEPLOYMENT`)
    "monitor-hourly": "monitor",
    "digest-daily": "digest",
    "reclassify": "reclassify",
    "backfill": "backfill",
}


def load_flow(entrypoint: str) -> Flow:
    """What a worker does after the pull step: import the entrypoint from the project root."""
    path, name = entrypoint.rsplit(":", 1)
    assert not Path(path).is_absolute(), "entrypoints are relative to the project root"
    assert (REPO / path).is_file(), entrypoint
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        return load_flow_from_entrypoint(f"{path}:{name}", use_placeholder_flow=False)


def next_runs(schedule: CronSchedule, n: int = 3) -> list[datetime]:
    """The server's scheduler logic: the next n run times, in UTC."""
    from prefect.server.schemas.schedules import CronSchedule as ServerCronSchedule

    server = ServerCronSchedule(**schedule.model_dump())
    start = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    return [d.astimezone(UTC) for d in asyncio.run(server.get_dates(n=n, start=start))]


def cron_schedules(deployment: dict[str, Any]) -> list[CronSchedule]:
    """Each schedule entry as `prefect deploy` builds it (prefect.cli.deploy._schedules)."""
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule

    built = [_schedule_config_to_deployment_schedule(s) for s in deployment.get("schedules") or []]
    for entry in built:
        assert isinstance(entry["schedule"], CronSchedule), entry
    # and the plain schema accepts exactly the keys written in the file
    for raw in deployment.get("schedules") or []:
        CronSchedule(**{k: v for k, v in raw.items() if k not in ("active", "slug")})
    return [e["schedule"] for e in built]


def test_the_expected_deployments_exist() -> None:
    assert set(DEPLOYMENTS) == set(EXPECTED)
    assert len(CONFIG["deployments"]) == len(DEPLOYMENTS), "duplicate deployment names"
    assert str(CONFIG["prefect-version"]).startswith("3.")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entrypoint_imports_a_flow(name: str) -> None:
    flow = load_flow(DEPLOYMENTS[name]["entrypoint"])
    assert isinstance(flow, Flow)
    assert flow.name == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameters_validate_against_the_flow_signature(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    flow = load_flow(deployment["entrypoint"])
    params = deployment.get("parameters") or {}
    validated = flow.validate_parameters(params)  # raises on unknown or missing parameters
    assert set(validated) >= set(params)


def test_monitor_runs_hourly_at_five_past() -> None:
    (schedule,) = cron_schedules(DEPLOYMENTS["monitor-hourly"])
    assert schedule.cron == "5 * * * *"
    runs = next_runs(schedule)
    assert [r.minute for r in runs] == [5, 5, 5]
    assert [(b - a).total_seconds() for a, b in zip(runs, runs[1:], strict=False)] == [3600] * 2


def test_digest_runs_daily_at_seven_almaty_time() -> None:
    (schedule,) = cron_schedules(DEPLOYMENTS["digest-daily"])
    assert schedule.cron == "0 7 * * *" and schedule.timezone == "Asia/Almaty"
    runs = next_runs(schedule)
    # Asia/Almaty is UTC+5 all year (no DST since 2024): 07:00 there is 02:00 UTC
    assert [(r.hour, r.minute) for r in runs] == [(2, 0)] * 3
    assert len({r.date() for r in runs}) == 3


@pytest.mark.parametrize("name", ["reclassify", "backfill"])
def test_on_demand_deployments_have_no_schedule(name: str) -> None:
    assert not DEPLOYMENTS[name].get("schedules")
    assert not DEPLOYMENTS[name].get("schedule")
    assert cron_schedules(DEPLOYMENTS[name]) == []


def test_every_deployment_uses_the_cstowatch_pool() -> None:
    pools = CONFIG["definitions"]["work_pools"]
    for name, deployment in DEPLOYMENTS.items():
        pool = deployment["work_pool"]
        assert pool["name"] == "cstowatch", name
        assert pool == pools["cstowatch"], name  # the alias, not a drifting copy
        env = pool.get("job_variables", {}).get("env", {})
        assert env.get("HF_HUB_OFFLINE") == "1", name


def test_pull_step_sets_the_working_directory_from_cstowatch_home() -> None:
    steps = CONFIG["pull"]
    assert len(steps) == 1
    (step,) = steps
    directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert re.fullmatch(r"\{\{\s*\$CSTOWATCH_HOME\s*\}\}", directory), directory


def test_definitions_block_is_shared_through_anchors() -> None:
    assert "definitions" in CONFIG
    anchors = set(re.findall(r"&([A-Za-z_][\w-]*)", RAW))
    aliases = set(re.findall(r"\*([A-Za-z_][\w-]*)", RAW))
    assert anchors and aliases
    assert aliases <= anchors, f"aliases without an anchor: {aliases - anchors}"
    # every anchor is defined under definitions: and used at least once
    events = list(yaml.parse(RAW))
    anchored = {e.anchor for e in events if getattr(e, "anchor", None)
                and not isinstance(e, yaml.AliasEvent)}
    used = {e.anchor for e in events if isinstance(e, yaml.AliasEvent)}
    assert anchored == anchors and used == aliases
    assert anchored <= used, f"anchors never used: {anchored - used}"
    definitions = RAW[RAW.index("\ndefinitions:"):RAW.index("\ndeployments:")]
    assert all(f"&{a}" in definitions for a in anchors)
