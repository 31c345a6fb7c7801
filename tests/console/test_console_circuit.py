"""A handler's circuit in the console (real Chromium): the Status cell shows an open
circuit with its last error, "Retry now" closes it, and the handler form keeps and sets
the rate limit and the circuit's failure count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import expect

from opennsps.config import Settings
from tests.console.browser import chromium
from tests.console.test_console_browser import add_user, log_in
from tests.pipeline.harness import (
    connector_server,
    gateway,
    gateway_config,
    http_handler,
    wait_for,
)
from tests.pipeline.test_circuit_and_rate_limit import Switch
from tests.support import basic_header, event_body

pytestmark = pytest.mark.slow
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-1"
STAYS_OPEN = {
    "open_after_failures": 1,
    "open_after_seconds": 0,
    "probe_first_seconds": 600,
    "probe_max_seconds": 600,
}


def test_the_circuit_column_and_retry_now(tmp_path: Path) -> None:
    switch = Switch()
    with connector_server(decide=switch) as connector:
        hss: dict[str, Any] = http_handler(
            connector.url, "hss", enrichment=False, circuit=STAYS_OPEN
        )
        data = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", "http://127.0.0.1:9", [])
        config = tmp_path / "opennsps.yaml"
        config.write_text(yaml.safe_dump(data))
        add_user(config, ADMIN, ADMIN_PASSWORD, "admin")
        with gateway(Settings.model_validate(data)) as gw, chromium() as browser:
            with gw.api() as api:
                api.post("/handlers", json=hss).raise_for_status()
            httpx.post(
                f"{gw.url}/espf/events", json=event_body(1), headers=basic_header(), timeout=10
            ).raise_for_status()
            with gw.api() as api:
                wait_for(
                    lambda: api.get("/handlers/hss").json()["circuit_state"]["state"] == "open",
                    what="the circuit open",
                )
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            log_in(page, gw, ADMIN, ADMIN_PASSWORD)
            page.goto(f"{gw.url}/console/#/handlers")
            row = page.locator("tr[data-handler=hss]")
            circuit = row.locator(".circuit")  # in the Status cell
            expect(circuit).to_contain_text("circuit open")
            expect(circuit).to_contain_text("HTTP 503")
            expect(circuit).to_contain_text("next probe")

            switch.down = False
            row.get_by_role("button", name="Retry now").click()
            expect(page.locator("#notice")).to_contain_text("circuit closed")
            expect(row.locator(".circuit")).to_have_count(0)  # closed and healthy: nothing
            wait_for(lambda: switch.accepted, what="the waiting delivery sent")

            # The form shows both settings, keeps what it does not show, and saves a change.
            page.goto(f"{gw.url}/console/#/handlers/edit/hss")
            failures = page.locator("input[name=circuit_failures]")
            expect(failures).to_have_value("1")
            page.locator("input[name=rate_per_second]").fill("25")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_role("heading", name="Handlers")).to_be_visible()
            with gw.api() as api:
                saved = api.get("/handlers/hss").json()
            assert saved["rate_limit"] == {"per_second": 25.0, "burst": None}
            assert saved["circuit"]["probe_first_seconds"] == 600  # kept
            assert saved["circuit"]["enabled"] is True

            page.goto(f"{gw.url}/console/#/handlers/edit/hss")
            page.locator("input[name=circuit_failures]").fill("0")
            page.locator("input[name=rate_per_second]").fill("")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_role("heading", name="Handlers")).to_be_visible()
            with gw.api() as api:
                saved = api.get("/handlers/hss").json()
            assert saved["rate_limit"] is None and saved["circuit"]["enabled"] is False
