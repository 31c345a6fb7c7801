"""The web console in real Chromium against a real OpenNSPS fed by the sandbox's ESPF:
log in, create a handler, watch events arrive on the dashboard, find a failed attempt by
IMSI and replay it, replay dead letters after a confirmation, pause and resume; a viewer
is refused every change, in the page and at the API."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import yaml
from playwright.sync_api import Page, expect
from typer.testing import CliRunner

from opennsps.cli import app as cli
from opennsps.config import Settings
from tests.connectors.test_hss_connector import portabilling
from tests.console.browser import chromium, screenshot_dir
from tests.pipeline.harness import (
    CONNECTOR_TOKEN,
    Answer,
    Gateway,
    connector_server,
    gateway,
    gateway_config,
    sandbox_server,
    wait_for,
)

ADMIN, ADMIN_PASSWORD = "admin", "admin-password-1"
VIEWER, VIEWER_PASSWORD = "watcher", "viewer-password-1"
REJECTED_ACCOUNT, DYING_ACCOUNT = 100003, 100004
QUICK_DEATH = {
    "fast_attempts": 2,
    "fast_first_seconds": 0.2,
    "fast_max_seconds": 0.2,
    "slow_steps_seconds": [0.2],
    "give_up_after_seconds": 0.5,
    "jitter": 0,
}


class Connector:
    """Refuses one account (422) and fails another (503) until told to accept all."""

    def __init__(self) -> None:
        self.accept_all = False

    def decide(self, body: dict[str, Any]) -> Answer:
        account = body["data"]["variables"].get("i_account")
        if not self.accept_all and account == REJECTED_ACCOUNT:
            return (
                422,
                {},
                b'{"message": "no such plan", "error": "bad plan", "type": "VALIDATION_ERROR"}',
            )
        if not self.accept_all and account == DYING_ACCOUNT:
            return 503, {}, b'{"message": "down", "error": "down", "type": "SERVICE_UNAVAILABLE"}'
        return 200, {}, b'{"ok": true}'


def add_user(config: Path, name: str, password: str, role: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["users", "add", name, "--role", role, "--password-stdin", "-c", str(config)],
        input=password + "\n",
    )
    assert result.exit_code == 0, result.output
    assert f"user {name} added ({role})" in result.output


def log_in(page: Page, gw: Gateway, name: str, password: str) -> None:
    page.goto(f"{gw.url}/console/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#who")).to_contain_text(name)


def stats(gw: Gateway) -> dict[str, Any]:
    with gw.api() as api:
        found: dict[str, Any] = api.get("/stats").json()
    return found


def test_an_operator_day_in_the_console(dataset_file: Path, tmp_path: Path) -> None:
    shots = screenshot_dir(tmp_path / "screenshots")
    connector = Connector()
    with (
        connector_server(decide=connector.decide) as server,
        sandbox_server(dataset_file) as sandbox,
        chromium() as browser,
    ):
        data = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", sandbox.url, [])
        config = tmp_path / "opennsps.yaml"
        config.write_text(yaml.safe_dump(data))
        add_user(config, ADMIN, ADMIN_PASSWORD, "admin")
        add_user(config, VIEWER, VIEWER_PASSWORD, "viewer")
        with gateway(Settings.model_validate(data)) as gw:
            sandbox.point_sender_at(f"{gw.url}/espf/events")
            page = browser.new_page(viewport={"width": 1366, "height": 900})

            # A wrong password is refused with a reason; the right one opens the dashboard.
            page.goto(f"{gw.url}/console/")
            page.get_by_label("User name").fill(ADMIN)
            page.get_by_label("Password").fill("not-the-password")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("alert")).to_contain_text("wrong user name or password")
            log_in(page, gw, ADMIN, ADMIN_PASSWORD)
            expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

            # Create a handler; an invalid id is explained before it is accepted.
            page.get_by_role("link", name="Handlers").click()
            page.get_by_role("button", name="New handler").click()
            page.get_by_label("ID (letters, digits, - and _)").fill("CRM!")
            page.get_by_label("Name").fill("CRM")
            page.get_by_label("Events (patterns, e.g. Subscriber/*)").fill("Subscriber/*")
            url = page.get_by_label("Connector URL")
            url.fill(server.url.replace("http://", "ftp://"))  # a wrong scheme
            page.get_by_label("Bearer token").fill(CONNECTOR_TOKEN)
            page.get_by_label("Timeout (seconds)").fill("5")
            page.get_by_label("Retry schedule (JSON, optional)").fill(json.dumps(QUICK_DEATH))
            page.get_by_role("button", name="Create handler").click()
            # Plain words, next to the field they concern (no regular expressions).
            expect(page.locator(".errors")).to_contain_text(
                "id: use 1 to 64 lower-case letters, digits"
            )
            expect(page.get_by_label("ID (letters, digits, - and _)")).to_have_class(
                re.compile("invalid")
            )
            expect(url).to_have_class(re.compile("invalid"))
            url_error = page.locator("label", has=url).locator(".field-error")
            expect(url_error).to_have_text("a URL starting with http:// or https://")
            expect(page.get_by_label("Bearer token")).not_to_have_class(re.compile("invalid"))
            assert "pattern" not in page.locator(".errors").inner_text()
            page.screenshot(path=str(shots / "handler-form.png"), full_page=True)
            page.get_by_label("ID (letters, digits, - and _)").fill("crm")
            url.fill(server.url)
            page.get_by_role("button", name="Create handler").click()
            row = page.locator("#handlers-table tr[data-handler=crm]")
            expect(row).to_contain_text("Subscriber/*")
            expect(row).to_contain_text("enabled")

            # A test-send goes to the connector for real, enriched, and shows the answer.
            row.get_by_role("button", name="Test").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_label("Variables (JSON)").fill('{"i_account": 100001}')
            dialog.get_by_role("button", name="Send test event").click()
            expect(dialog.locator("#test-result")).to_contain_text("delivered")
            expect(dialog.locator("#test-result")).to_contain_text('"sim_info"')
            page.screenshot(path=str(shots / "test-send.png"))
            dialog.get_by_role("button", name="Close").click()
            [sent] = server.bodies()
            assert sent["event_id"].startswith("test-") and sent["pb_data"]["account_info"]
            with gw.api() as api:  # nothing of it was stored
                assert api.get("/attempts").json()["items"] == []

            # Events from PortaBilling arrive and show on the dashboard.
            for account in (100001, 100002, REJECTED_ACCOUNT, DYING_ACCOUNT, 100005):
                sandbox.post(f"/sandbox/accounts/{account}/topup", {"amount": 5})
            wait_for(
                lambda: stats(gw)["deliveries_by_state"].get("dead") == 1,
                timeout=30,
                what="four deliveries finished and one dead",
            )
            page.get_by_role("link", name="Dashboard").click()
            cards = page.locator("#dashboard-cards")
            expect(cards.locator(".card", has_text="Events received")).to_contain_text("5")
            expect(cards.locator(".card", has_text="Dead")).to_contain_text("1")
            outcomes = stats(gw)["last_hour"]["by_handler"]["crm"]
            failed = outcomes["rejected"] + outcomes["retry"] + outcomes["dead"]
            assert outcomes["delivered"] == 3 and outcomes["rejected"] == 1
            rate = 100 * 3 / (3 + failed)
            handler_row = page.locator("#dashboard-handlers tr", has_text="crm")
            expect(handler_row).to_contain_text(f"{rate:.1f} %")
            retrying_cell = handler_row.locator("td").nth(3)  # Handler, Status, Pending, Retrying
            expect(retrying_cell).to_have_text("0")
            expect(page.locator(".chart svg").first).to_be_visible()
            page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

            # Find the refused attempt by the SIM's IMSI, look at it, replay it.
            cards_of = portabilling(sandbox, "SIMCard/get_card_list", REJECTED_ACCOUNT)
            imsi = str(cards_of["card_list"][0]["imsi"])
            page.get_by_role("link", name="Execution logs").click()
            page.get_by_label("IMSI").fill(imsi)
            page.get_by_role("button", name="Search").click()
            attempts = page.locator("#attempts-table tbody tr")
            expect(attempts).to_have_count(1)
            expect(attempts.first).to_contain_text("rejected")
            attempts.first.click()
            detail = page.locator("#attempt-detail")
            expect(detail).to_contain_text("no such plan")
            expect(page.locator("#attempt-payload")).to_contain_text(imsi)
            page.screenshot(path=str(shots / "execution-logs.png"), full_page=True)
            connector.accept_all = True
            detail.get_by_role("button", name="Replay this delivery").click()
            expect(page.locator("#notice")).to_contain_text("Delivery replayed")
            wait_for(
                lambda: (
                    page.get_by_role("button", name="Search").click()
                    or page.locator("#attempts-table tbody tr").count() == 2
                ),
                timeout=15,
                what="the replayed attempt in the execution log",
            )
            expect(attempts.first).to_contain_text("delivered")

            # Dead letters: the count is confirmed before anything is replayed.
            page.get_by_role("link", name="Dead letters").click()
            expect(page.locator("#dead-summary")).to_have_text("1 dead delivery matches.")
            expect(page.locator("#dead-table")).to_contain_text("HTTP 503; gave up after")
            page.screenshot(path=str(shots / "dead-letters.png"), full_page=True)
            page.get_by_role("button", name="Replay all matching…").click()
            expect(page.locator("#replay-count")).to_contain_text("1 dead delivery will be")
            expect(page.locator("#replay-sample")).to_contain_text(f"account {DYING_ACCOUNT}")
            page.get_by_role("button", name="Replay 1").click()
            expect(page.locator("#notice")).to_contain_text("1 dead delivery replayed")
            wait_for(
                lambda: stats(gw)["deliveries_by_state"] == {"delivered": 5},
                timeout=15,
                what="every delivery delivered",
            )

            page.get_by_role("link", name="Handlers").click()
            expect(row).to_contain_text("%")
            page.screenshot(path=str(shots / "handlers.png"), full_page=True)
            row.get_by_role("link", name="crm").click()  # that handler's execution log
            expect(page.locator("select[name=handler_id]")).to_have_value("crm")
            expect(page.locator("#attempts-table tbody tr").first).to_contain_text("crm")

            # The event page shows the ESPF event, trace ids and each attempt.
            page.get_by_role("link", name="Events").click()
            found_events = page.locator("#events-table tbody tr")
            # As a person would, search once the page's own list is shown (the list shows
            # only its newest answer whatever the order they arrive in).
            expect(found_events).to_have_count(5)
            page.get_by_label("Account (i_account)").fill(str(DYING_ACCOUNT))
            page.get_by_role("button", name="Search").click()
            expect(found_events).to_have_count(1)  # the search has answered
            expect(found_events.first).to_contain_text(f'"i_account":{DYING_ACCOUNT}')
            found_events.first.click()
            expect(page.get_by_role("heading", name="Deliveries")).to_be_visible()
            expect(page.locator("main")).to_contain_text("x-b3-traceid")
            expect(page.locator(".timeline")).to_contain_text("dead")
            expect(page.locator(".timeline")).to_contain_text("delivered")
            page.screenshot(path=str(shots / "event.png"), full_page=True)

            # Maintenance: paused everywhere until resumed; events wait, then go out.
            page.once("dialog", lambda dialog: dialog.accept())  # "Pause all processing?"
            page.get_by_role("button", name="Pause all processing").click()
            banner = page.locator("#paused-banner")
            expect(banner).to_contain_text("Processing is paused")
            page.get_by_role("link", name="Handlers").click()
            expect(banner).to_be_visible()
            sandbox.post("/sandbox/accounts/100006/topup", {"amount": 5})
            wait_for(lambda: stats(gw)["queue_depth"].get("crm", {}).get("pending") == 1)
            time.sleep(0.5)  # the worker would have delivered it by now if it were running
            assert stats(gw)["queue_depth"]["crm"] == {"pending": 1}
            page.get_by_role("button", name="Resume all processing").click()
            expect(banner).to_be_hidden()
            wait_for(
                lambda: stats(gw)["deliveries_by_state"] == {"delivered": 6},
                what="the event held back by the pause delivered",
            )

            # A viewer sees everything and can change nothing, in the page or at the API.
            viewer = browser.new_context().new_page()
            log_in(viewer, gw, VIEWER, VIEWER_PASSWORD)
            expect(viewer.locator("#pause-all")).to_be_hidden()
            viewer.get_by_role("link", name="Handlers").click()
            expect(viewer.locator("#handlers-table")).to_contain_text("crm")
            expect(viewer.get_by_role("button", name="New handler")).to_have_count(0)
            expect(viewer.get_by_role("button", name="Disable")).to_have_count(0)
            refused = viewer.evaluate(
                """async () => {
                    const session = await (await fetch('/console/session')).json();
                    const statuses = [];
                    for (const [method, path] of [
                        ['POST', '/api/v1/pause'],
                        ['POST', '/api/v1/handlers/crm/disable'],
                        ['DELETE', '/api/v1/handlers/crm'],
                        ['POST', '/api/v1/dead/replay'],
                    ]) {
                        const answer = await fetch(path, {
                            method, headers: {'X-CSRF-Token': session.csrf,
                                              'Content-Type': 'application/json'},
                            body: method === 'POST' ? '{}' : undefined});
                        statuses.push(answer.status);
                    }
                    return statuses;
                }"""
            )
            assert refused == [403, 403, 403, 403]
            # Without the session's CSRF token even the admin's cookie changes nothing.
            forged = page.evaluate(
                "async () => (await fetch('/api/v1/pause', {method: 'POST'})).status"
            )
            assert forged == 401
            assert stats(gw)["paused"] is False
