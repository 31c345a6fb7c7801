from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI

from opennsps.app import create_app
from opennsps.config import Settings
from opennsps.logging import configure_logging
from opennsps.sandbox.dataset import generate
from opennsps.store.event_store import EventStore
from tests.support import child_processes, running, settings_for
from tools.ensure_postgres import ensure as ensure_postgres

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_configure(config: pytest.Config) -> None:
    configure_logging("warning")


LEFTOVER_GRACE_SECONDS = 15.0


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """A test stops every process it started, whatever happened in it: one still running
    after it (and its fixtures) ended is killed, and the test fails saying which."""
    before = set(child_processes())
    yield
    deadline = time.monotonic() + LEFTOVER_GRACE_SECONDS  # some may still be exiting
    while True:
        left = {pid: cmd for pid, cmd in child_processes().items() if pid not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if left:
        pytest.fail(f"the test left processes running (now killed): {left}")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    ensure_postgres()
    return ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"opennsps_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_admin_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'opennsps.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(store_url: str) -> Settings:
    return settings_for(store_url)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def gateway(app: FastAPI) -> Iterator[str]:
    """The base URL of a real OpenNSPS server on 127.0.0.1 (store engine per `store_url`)."""
    with running(app) as url:
        yield url


@pytest.fixture
def store(app: FastAPI, gateway: str) -> EventStore:
    event_store: EventStore = app.state.store
    return event_store


@pytest.fixture(scope="session")
def dataset_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sandbox dataset (200 accounts from 100001), generated once per run."""
    path = tmp_path_factory.mktemp("dataset") / "sandbox.db"
    generate(path, 200, seed=42)
    return path


@pytest.fixture
def dataset_file(dataset_template: Path, tmp_path: Path) -> Path:
    """A copy of the dataset that one test may change."""
    copy = tmp_path / "sandbox.db"
    copy.write_bytes(dataset_template.read_bytes())
    return copy
