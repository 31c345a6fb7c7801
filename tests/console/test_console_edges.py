"""The console's rough edges, each checked in real Chromium: the login page without the
navigation, no stray "null", one page at a time however fast the clicks, the chart legend,
confirmations before archiving or pausing everything, only the actions a handler allows,
and a logout that ends the session for every copy of its cookie."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import Dialog, Route, expect

from opennsps.config import Settings, StoreConfig
from opennsps.store.event_store import EventStore
from opennsps.store.handlers import HandlerStore
from tests.console.browser import chromium
from tests.console.test_console_browser import QUICK_DEATH, add_user, log_in
from tests.pipeline.harness import (
    ADMIN_TOKEN,
    Gateway,
    connector_server,
    gateway,
    gateway_config,
    http_handler,
    sandbox_server,
    wait_for,
)

pytestmark = pytest.mark.slow
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-1"
VIEWER, VIEWER_PASSWORD = "watcher", "viewer-password-1"


def test_the_consoles_rough_edges_are_gone(tmp_path: Path) -> None:
    declared = http_handler("http://127.0.0.1:9/events", "declared", events=["Subscriber/*"])
    data = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", "http://127.0.0.1:9", [declared])
    config = tmp_path / "opennsps.yaml"
    config.write_text(yaml.safe_dump(data))
    add_user(config, ADMIN, ADMIN_PASSWORD, "admin")
    add_user(config, VIEWER, VIEWER_PASSWORD, "viewer")
    with gateway(Settings.model_validate(data)) as gw, chromium() as browser:
        with gw.api() as api:
            api.post("/handlers", json=http_handler("http://127.0.0.1:9/e", "retired"))
            api.post("/handlers/retired/archive").raise_for_status()
            api.post("/handlers", json=http_handler("http://127.0.0.1:9/e", "live"))
        page = browser.new_page(viewport={"width": 1366, "height": 900})

        # The login page shows the login form only: no navigation, no empty button.
        page.goto(f"{gw.url}/console/")
        expect(page.get_by_label("User name")).to_be_visible()
        expect(page.locator("#top")).to_be_hidden()
        expect(page.get_by_role("button", name="Log out")).to_be_hidden()

        # A viewer's handlers page has no stray "null" where an admin's button would be.
        viewer = browser.new_context().new_page()
        log_in(viewer, gw, VIEWER, VIEWER_PASSWORD)
        viewer.get_by_role("link", name="Handlers").click()
        expect(viewer.locator("#handlers-table")).to_contain_text("declared")
        assert "null" not in viewer.locator("#view").inner_text()

        log_in(page, gw, ADMIN, ADMIN_PASSWORD)
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

        # The legend's swatch stays a small square (not the form errors' red box).
        swatch = page.locator(".chart .legend .swatch").last
        expect(swatch).to_be_visible()
        box = swatch.bounding_box()
        assert box is not None and box["width"] <= 12 and box["height"] <= 12

        # Two quick navigations show one page: the slower one does not add itself below.
        with page.expect_response(lambda r: r.url.endswith("/api/v1/stats")):
            page.evaluate(
                "() => { location.hash = '#/handlers';"
                " setTimeout(() => { location.hash = '#/events'; }, 0); }"
            )
        expect(page.get_by_role("heading", name="Events")).to_be_visible()
        page.evaluate("() => new Promise((done) => setTimeout(done, 100))")  # let it finish
        expect(page.locator("#view h1")).to_have_count(1)

        # Handlers: only the actions each one allows.
        page.get_by_role("link", name="Handlers").click()
        declared_row = page.locator("#handlers-table tr[data-handler=declared]")
        retired_row = page.locator("#handlers-table tr[data-handler=retired]")
        live_row = page.locator("#handlers-table tr[data-handler=live]")
        expect(declared_row).to_contain_text("from the config file")
        for name in ("Edit", "Delete", "Archive"):
            expect(declared_row.get_by_role("button", name=name)).to_have_count(0)
        expect(declared_row.get_by_role("button", name="Disable")).to_have_count(1)
        expect(retired_row).to_contain_text("archived")
        for name in ("Enable", "Disable", "Pause", "Edit", "Archive"):
            expect(retired_row.get_by_role("button", name=name)).to_have_count(0)

        # Archiving asks first; dismissed, nothing changes.
        asked: list[str] = []

        def answer(accept: bool) -> None:
            def handle(dialog: Dialog) -> None:
                asked.append(dialog.message)
                if accept:
                    dialog.accept()
                else:
                    dialog.dismiss()

            page.once("dialog", handle)

        answer(accept=False)
        live_row.get_by_role("button", name="Archive").click()
        assert asked and "Archive handler live?" in asked[-1]
        expect(live_row).to_contain_text("enabled")
        answer(accept=True)
        live_row.get_by_role("button", name="Archive").click()
        expect(page.locator("#handlers-table tr[data-handler=live]")).to_contain_text("archived")

        # Pausing everything asks first too.
        answer(accept=False)
        page.get_by_role("button", name="Pause all processing").click()
        assert "Pause all processing?" in asked[-1]
        assert _paused(gw) is False
        answer(accept=True)
        page.get_by_role("button", name="Pause all processing").click()
        expect(page.locator("#paused-banner")).to_contain_text("Processing is paused")
        page.get_by_role("button", name="Resume all processing").click()  # no question
        expect(page.locator("#paused-banner")).to_be_hidden()

        # Logging out ends the session: a copy of the cookie taken before is refused.
        [cookie] = [c for c in page.context.cookies() if c["name"] == "opennsps_session"]
        copy = {"opennsps_session": cookie["value"]}
        assert httpx.get(f"{gw.url}/api/v1/stats", cookies=copy, timeout=10).status_code == 200
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_label("User name")).to_be_visible()
        expect(page.locator("#top")).to_be_hidden()
        after = httpx.get(f"{gw.url}/api/v1/stats", cookies=copy, timeout=10)
        assert after.status_code == 401


def _paused(gw: Gateway) -> bool:
    answer = httpx.get(
        f"{gw.url}/api/v1/pause", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
    )
    paused: bool = answer.json()["paused"]
    return paused


def test_the_api_pages_work_without_internet_and_offer_authorize(tmp_path: Path) -> None:
    data = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", "http://127.0.0.1:9", [])
    with gateway(Settings.model_validate(data)) as gw, chromium() as browser:
        page = browser.new_page()
        elsewhere: list[str] = []

        def offline(route: Route) -> None:
            if route.request.url.startswith(gw.url):
                route.continue_()
            else:  # as on a network without Internet access
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", offline)
        page.goto(f"{gw.url}/docs")
        expect(page.get_by_role("button", name="Authorize")).to_be_visible(timeout=15_000)
        expect(page.locator(".swagger-ui")).to_contain_text("/api/v1/pause")
        page.get_by_role("button", name="Authorize").click()
        expect(page.locator(".auth-container").first).to_contain_text("api_token")
        page.goto(f"{gw.url}/redoc")
        expect(page.locator("redoc, .redoc-wrap").first).to_contain_text("OpenNSPS", timeout=15_000)
        assert elsewhere == []


def test_navigation_follows_an_account_and_tables_fit_1024_pixels(
    dataset_file: Path, tmp_path: Path
) -> None:
    slow = {**QUICK_DEATH, "give_up_after_seconds": 2.5}
    handlers = [
        {**http_handler("", "crm", events=["Subscriber/*"]), "retry": slow},
        {**http_handler("", "billing", events=["Customer/*"]), "retry": QUICK_DEATH},
    ]
    with (
        connector_server(decide=lambda _: (503, {}, b'{"message": "down"}')) as server,
        sandbox_server(dataset_file) as sandbox,
        chromium() as browser,
    ):
        for handler in handlers:
            handler["http"]["url"] = server.url
        data = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", sandbox.url, handlers)
        config = tmp_path / "opennsps.yaml"
        config.write_text(yaml.safe_dump(data))
        add_user(config, ADMIN, ADMIN_PASSWORD, "admin")
        with gateway(Settings.model_validate(data)) as gw:
            sandbox.point_sender_at(f"{gw.url}/espf/events")
            sandbox.post("/sandbox/accounts/100001/topup", {"amount": 5})  # crm: dies last
            sandbox.post("/sandbox/customers/6002", {"name": "Renamed"})  # billing: dies first
            wait_for(
                lambda: _dead(gw) == 2, timeout=30, what="both deliveries dead, billing's first"
            )
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            log_in(page, gw, ADMIN, ADMIN_PASSWORD)

            # Dead letters: in order of death, with the account, Replay within the page.
            page.get_by_role("link", name="Dead letters").click()
            rows = page.locator("#dead-table tbody tr")
            expect(rows).to_have_count(2)
            expect(rows.nth(0)).to_contain_text("crm")  # died last, though queued first
            expect(rows.nth(1)).to_contain_text("billing")
            replay = rows.nth(0).get_by_role("button", name="Replay")
            box = replay.bounding_box()
            assert box is not None and box["x"] + box["width"] <= 1024

            # From a dead letter to the account's execution log, and back.
            rows.nth(0).get_by_role("link", name="100001").click()
            expect(page.get_by_role("heading", name="Execution logs")).to_be_visible()
            expect(page.get_by_label("Account (i_account)")).to_have_value("100001")
            attempts = page.locator("#attempts-table tbody tr")
            expect(attempts.first).to_contain_text("crm")
            assert "i_account=100001" in page.url
            expect(attempts).to_have_count(_attempts_of(gw, 100001))
            page.reload()  # the filter is in the URL: a reload (or a shared link) keeps it
            expect(page.get_by_label("Account (i_account)")).to_have_value("100001")
            page.go_back()
            expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()

            # A search is kept in the URL too; an event leads to its account's log.
            page.get_by_role("link", name="Events").click()
            page.get_by_label("Event type").fill("Subscriber/*")
            page.get_by_role("button", name="Search").click()
            expect(page.locator("#events-table tbody tr")).to_have_count(1)
            assert "event_type=Subscriber" in page.url
            page.locator("#events-table tbody tr").first.click()
            page.get_by_role("link", name="Execution log of account 100001").click()
            expect(page.get_by_label("Account (i_account)")).to_have_value("100001")

            # A list shows its newest answer: an older search answering late changes nothing.
            held: list[Route] = []

            def hold_the_first(route: Route) -> None:
                if not held and "i_account=" not in route.request.url:
                    held.append(route)  # answered below, after the newer search
                else:
                    route.continue_()

            page.route("**/api/v1/events?*", hold_the_first)
            page.get_by_role("link", name="Events").click()
            # (Playwright hands the request over while it runs a call: hence the waits.)
            wait_for(lambda: page.wait_for_timeout(20) or held, what="the first search held")
            page.get_by_label("Account (i_account)").fill("100001")
            page.get_by_role("button", name="Search").click()
            listed = page.locator("#events-table tbody tr")
            expect(listed).to_have_count(1)
            with page.expect_response(lambda r: "/api/v1/events?" in r.url):
                held[0].continue_()
            page.evaluate("() => new Promise((done) => setTimeout(done, 100))")
            expect(listed).to_have_count(1)
            page.unroute("**/api/v1/events?*")

            # The handlers table fits: an API handler's seven actions take at most two rows.
            with gw.api() as api:
                extra = http_handler(server.url, "crm-connector-with-a-long-name")
                api.post("/handlers", json=extra).raise_for_status()
            page.get_by_role("link", name="Handlers").click()
            row = page.locator("#handlers-table tr[data-handler=crm-connector-with-a-long-name]")
            expect(row.locator(".actions button")).to_have_count(7)
            first = row.get_by_role("button", name="Disable").bounding_box()
            last = row.get_by_role("button", name="Delete").bounding_box()
            table = page.locator("#handlers-table").bounding_box()
            assert first and last and table
            assert last["y"] - first["y"] < 2 * first["height"]
            assert table["x"] + table["width"] <= 1024


def _dead(gw: Gateway) -> int:
    with gw.api() as api:
        count: int = api.get("/stats").json()["deliveries_by_state"].get("dead", 0)
    return count


def _attempts_of(gw: Gateway, i_account: int) -> int:
    with gw.api() as api:
        return len(api.get("/attempts", params={"i_account": i_account}).json()["items"])


def test_the_handler_form_has_fields_for_each_type_and_a_json_view(tmp_path: Path) -> None:
    data = gateway_config(f"sqlite:///{tmp_path / 'store.db'}", "http://127.0.0.1:9", [])
    config = tmp_path / "opennsps.yaml"
    config.write_text(yaml.safe_dump(data))
    add_user(config, ADMIN, ADMIN_PASSWORD, "admin")
    with gateway(Settings.model_validate(data)) as gw, chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        log_in(page, gw, ADMIN, ADMIN_PASSWORD)
        page.goto(f"{gw.url}/console/#/handlers/new")
        page.get_by_label("ID (letters, digits, - and _)").fill("hss")
        page.locator("select[name=type]").select_option("python")
        expect(page.locator("select[name=plugin]")).to_have_value(
            "opennsps.connectors.hss:HssConnector"
        )
        page.get_by_label("PyHSS API URL").fill("http://127.0.0.1:9/hss")
        page.get_by_label("Provisioning key").fill("key-0123456789")
        # the RADIUS plug-in has its own fields; back to the HSS
        page.locator("select[name=plugin]").select_option(
            "opennsps.connectors.radius:RadiusConnector"
        )
        expect(page.get_by_label("FreeRADIUS database (SQLAlchemy URL)")).to_be_visible()
        page.locator("select[name=plugin]").select_option("opennsps.connectors.hss:HssConnector")
        page.get_by_label("PyHSS API URL").fill("http://127.0.0.1:9/hss")
        page.get_by_label("Provisioning key").fill("key-0123456789")
        profiles = page.get_by_label("Profiles (JSON", exact=False)
        profiles.fill('{"eps-std": {"apn_ids": [1, 2]}')  # not JSON: refused in place
        page.get_by_role("button", name="Create handler").click()
        expect(profiles).to_have_class(re.compile("invalid"))
        expect(page.locator("label", has=profiles).locator(".field-error")).to_contain_text(
            "is not valid JSON"
        )
        profiles.fill('{"eps-std": {"apn_ids": [1, 2], "ambr_dl": 1000, "ambr_ul": 500}}')
        # A filter that does not compile is refused next to its field.
        condition = page.locator("input[name=filter]")
        condition.fill("pb_data.account_info.(")
        page.get_by_role("button", name="Create handler").click()
        expect(condition).to_have_class(re.compile("invalid"))
        expect(page.locator("label", has=condition).locator(".field-error")).to_be_visible()
        condition.fill("pb_data.account_info.i_product in [3776, 3777]")
        # The JSON view shows the same settings, and an edit there comes back to the fields.
        page.get_by_label("Edit as JSON (advanced)").check()
        raw = page.get_by_label("Type settings (JSON)")
        shown = json.loads(raw.input_value())
        assert shown["entry_point"] == "opennsps.connectors.hss:HssConnector"
        assert shown["options"]["url"] == "http://127.0.0.1:9/hss"
        shown["options"]["profile_attribute"] = "cs_profile"
        raw.fill(json.dumps(shown))
        page.get_by_label("Edit as JSON (advanced)").uncheck()
        expect(page.get_by_label("Access policy attribute")).to_have_value("cs_profile")
        page.get_by_role("button", name="Create handler").click()
        expect(page.locator("#handlers-table tr[data-handler=hss]")).to_be_visible()
        with gw.api() as api:
            stored = api.get("/handlers/hss").json()["python"]
        assert stored["entry_point"] == "opennsps.connectors.hss:HssConnector"
        with gw.api() as api:
            assert api.get("/handlers/hss").json()["filter"] == (
                "pb_data.account_info.i_product in [3776, 3777]"
            )
        assert stored["options"] == {
            "url": "http://127.0.0.1:9/hss",
            "provisioning_key": "[redacted]",
            "profile_attribute": "cs_profile",
            "profiles": {"eps-std": {"apn_ids": [1, 2], "ambr_dl": 1000, "ambr_ul": 500}},
        }
        # Editing shows the stored values in the fields; saved as shown, the key is kept.
        page.goto(f"{gw.url}/console/#/handlers/edit/hss")
        expect(page.get_by_label("PyHSS API URL")).to_have_value("http://127.0.0.1:9/hss")
        expect(page.get_by_label("Provisioning key")).to_have_value("[redacted]")
        page.get_by_label("PyHSS API URL").fill("http://127.0.0.1:9/hss2")
        page.locator("select[name=holds_back]").select_option("until_done")
        page.get_by_role("button", name="Save handler").click()
        expect(page.locator("#handlers-table tr[data-handler=hss]")).to_be_visible()
        handlers = HandlerStore(EventStore(StoreConfig(url=data["store"]["url"])).engine)
        options = handlers.get("hss").definition.python.options  # type: ignore[union-attr]
        assert options["url"] == "http://127.0.0.1:9/hss2"
        assert handlers.get("hss").definition.holds_back == "until_done"
        assert options["provisioning_key"] == "key-0123456789"
