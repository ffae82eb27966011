"""The production subcommands, run as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET_KEY

GENHOOK = str(Path(sys.executable).parent / "genhook")


def genhook(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")}
    env |= {f"GENHOOK_{name.upper()}": value for name, value in settings.items()}
    return subprocess.run(
        [GENHOOK, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_migrate_then_create_an_account(tmp_path: Path) -> None:
    # Given a fresh directory, migrate creates the embedded database
    migrated = genhook("migrate", cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "var" / "genhook.db").exists()

    # When an account is created, its credentials are printed
    key = TEST_SECRET_KEY
    created = genhook(
        "accounts",
        "create",
        "--email",
        "ops@example.com",
        "--credits",
        "7",
        cwd=tmp_path,
        secret_key=key,
    )
    assert created.returncode == 0, created.stderr
    lines = dict(
        line.split(None, 1)
        for line in created.stdout.replace("api key", "api_key")
        .replace("signing secret", "signing_secret")
        .splitlines()
    )
    assert lines["credits"].strip() == "7"
    assert lines["api_key"].startswith("gh_") and lines["signing_secret"].startswith("whsec_")

    # And the same email cannot be used twice
    again = genhook(
        "accounts", "create", "--email", "OPS@example.com", cwd=tmp_path, secret_key=key
    )
    assert again.returncode == 1 and "already exists" in again.stderr


def test_openapi_prints_the_document(tmp_path: Path) -> None:
    result = genhook("openapi", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["openapi"] == "3.1.0"


@pytest.mark.parametrize("command", ["worker", "worker --queues webhooks", "scheduler", "api"])
def test_production_processes_refuse_to_start_without_redis(tmp_path: Path, command: str) -> None:
    result = genhook(*command.split(), cwd=tmp_path)
    assert result.returncode != 0
    assert "GENHOOK_REDIS_URL" in result.stderr


def test_a_worker_serves_only_queues_that_exist(tmp_path: Path) -> None:
    result = genhook("worker", "--queues", "jobs", "mail", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'mail'" in result.stderr and "'webhooks'" in result.stderr


def test_providers_probes_each_enabled_provider(tmp_path: Path) -> None:
    # Given the simulator's Kling dialect and a Luma configured with a wrong key
    from backend.simulator import credentials
    from backend.simulator.app import create_app as create_simulator
    from tests.support.wsgi_server import serve_wsgi

    with serve_wsgi(create_simulator(render_seconds=1)) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")}
        aimed = credentials.provider_settings(sim)
        env.update({f"GENHOOK_{k.upper()}": v for k, v in aimed["kling"].items()})
        env.update({f"GENHOOK_{k.upper()}": v for k, v in aimed["luma"].items()})
        env["GENHOOK_LUMA_API_KEY"] = "not-the-key"

        # When the operator checks them
        checked = subprocess.run(
            [GENHOOK, "providers"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    # Then each is listed with its probe's outcome, and a failure sets the exit code
    assert checked.returncode == 1, checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0].split() == ["kling", "ok"]
    assert lines[1].startswith("luma") and "FAILED" in lines[1]
