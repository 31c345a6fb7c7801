"""The PortaBilling JSON API as the ESPF guide's examples use it, over real HTTP."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import httpx

from tests.sandbox.conftest import API_LOGIN, API_PASSWORD, API_TOKEN, SandboxServer

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
FIRST = 100_001


def call(
    client: httpx.Client, method: str, params: dict[str, object], auth: dict[str, object] | None
) -> httpx.Response:
    fields = {"params": json.dumps(params)}
    if auth is not None:
        fields["auth_info"] = json.dumps(auth)
    return client.post(f"/rest/{method}", data=fields)


def login(client: httpx.Client) -> str:
    response = call(client, "Session/login", {"login": API_LOGIN, "password": API_PASSWORD}, None)
    assert response.status_code == 200, response.text
    session_id: str = response.json()["session_id"]
    return session_id


def test_the_guides_login_and_account_request_byte_for_byte(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        body = "params=" + quote(json.dumps({"login": API_LOGIN, "password": API_PASSWORD}))
        answer = client.post("/rest/Session/login", content=body, headers=FORM)
        session_id = answer.json()["session_id"]
        # The guide's own encoding: JSON without spaces, percent-encoded.
        auth = quote(json.dumps({"session_id": session_id}, separators=(",", ":")), safe="")
        params = quote(
            json.dumps({"i_account": FIRST, "get_included_services": 1}, separators=(",", ":")),
            safe="",
        )
        response = client.post(
            "/rest/Account/get_account_info",
            content=f"auth_info={auth}&params={params}",
            headers=FORM,
        )
    assert response.status_code == 200
    info = response.json()["account_info"]
    assert info["i_account"] == FIRST
    assert info["id"].endswith("@msisdn")
    assert info["bill_status"] in {"O", "S", "I", "C"}
    assert info["billing_model"] in {-1, 0, 1, 2, 4}
    assert info["blocked"] in {"Y", "N"}
    feature = info["service_features"][0]
    assert feature["name"] == "netaccess_policy"
    assert feature["attributes"][0]["name"] == "access_policy"


def test_multipart_form_data_is_accepted(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        session_id = login(client)
        response = client.post(
            "/rest/SIMCard/get_card_list",
            files={
                "auth_info": (None, json.dumps({"session_id": session_id})),
                "params": (None, json.dumps({"i_account": FIRST})),
            },
        )
    cards = response.json()["card_list"]
    assert len(cards) == 1
    assert len(cards[0]["imsi"]) == 15 and cards[0]["i_account"] == FIRST


def test_login_with_an_api_token(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        answer = call(client, "Session/login", {"login": API_LOGIN, "token": API_TOKEN}, None)
    assert len(answer.json()["session_id"]) == 32


def test_wrong_credentials_fault_like_portabilling(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        answer = call(client, "Session/login", {"login": API_LOGIN, "password": "nope"}, None)
        unknown = call(
            client, "Account/get_account_info", {"i_account": FIRST}, {"session_id": "bogus"}
        )
    assert answer.status_code == 500
    assert answer.json()["faultcode"] == "Server.Session.login.auth_failed"
    assert unknown.status_code == 500
    assert unknown.json()["faultcode"] == "Server.Session.check_auth.auth_failed"
    assert "faultstring" in unknown.json()


def test_one_session_serves_many_calls(sandbox: SandboxServer) -> None:
    sessions = sandbox.app.state.sandbox.portabilling.sessions
    with sandbox.client() as client:
        session_id = login(client)
        for i_account in range(FIRST, FIRST + 20):
            assert (
                call(
                    client,
                    "Account/get_account_info",
                    {"i_account": i_account},
                    {"session_id": session_id},
                ).status_code
                == 200
            )
    assert sessions.opened == 1


def test_credentials_on_every_call_open_a_session_each_time(sandbox: SandboxServer) -> None:
    sessions = sandbox.app.state.sandbox.portabilling.sessions
    auth = {"login": API_LOGIN, "password": API_PASSWORD}
    with sandbox.client() as client:
        for _ in range(3):
            assert (
                call(client, "Account/get_account_info", {"i_account": FIRST}, auth).status_code
                == 200
            )
    assert sessions.opened == 3


def test_idle_sessions_expire_and_a_new_login_works(sandbox: SandboxServer) -> None:
    sessions = sandbox.app.state.sandbox.portabilling.sessions
    sessions.idle_timeout = 0.3
    with sandbox.client() as client:
        session_id = login(client)
        assert (
            call(
                client, "Account/get_account_info", {"i_account": FIRST}, {"session_id": session_id}
            ).status_code
            == 200
        )
        time.sleep(0.5)
        expired = call(
            client, "Account/get_account_info", {"i_account": FIRST}, {"session_id": session_id}
        )
        assert expired.json()["faultcode"] == "Server.Session.check_auth.auth_failed"
        fresh = login(client)
        assert (
            call(
                client, "Account/get_account_info", {"i_account": FIRST}, {"session_id": fresh}
            ).status_code
            == 200
        )


def test_a_session_expiry_storm_ends_every_session(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        session_id = login(client)
        assert client.post("/sandbox/sessions/expire").json()["expired"] >= 1
        after = call(
            client, "Account/get_account_info", {"i_account": FIRST}, {"session_id": session_id}
        )
    assert after.json()["faultcode"] == "Server.Session.check_auth.auth_failed"


def test_every_method_answers_in_its_portabilling_shape(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        auth = {"session_id": login(client)}
        info = call(client, "Account/get_account_info", {"i_account": FIRST}, auth).json()[
            "account_info"
        ]
        card = call(client, "SIMCard/get_card_list", {"i_account": FIRST}, auth).json()[
            "card_list"
        ][0]
        answers = {
            "custom_fields_values": call(
                client, "Account/get_custom_fields_values", {"i_account": FIRST}, auth
            ),
            "service_features": call(
                client, "Account/get_service_features_list", {"i_account": FIRST}, auth
            ),
            "full_vd_counter_info": call(
                client, "Account/get_full_vd_counter_info", {"i_account": FIRST}, auth
            ),
            "sim_info": call(
                client, "SIMCard/get_card_info", {"i_sim_card": card["i_sim_card"]}, auth
            ),
            "access_policy_info": call(
                client,
                "AccessPolicy/get_access_policy_info",
                {
                    "i_access_policy": int(
                        info["service_features"][0]["attributes"][0]["effective_value"]
                    )
                },
                auth,
            ),
            "product_info": call(
                client, "Product/get_product_info", {"i_product": info["i_product"]}, auth
            ),
            "customer_info": call(
                client, "Customer/get_customer_info", {"i_customer": info["i_customer"]}, auth
            ),
            "invoice_info": call(client, "Invoice/get_invoice_info", {"i_invoice": 900_001}, auth),
        }
        number = client.get("/sandbox/summary")  # any DID of the dataset
        did = sandbox.app.state.sandbox.control_db.execute(
            "SELECT number FROM dids LIMIT 1"
        ).fetchone()[0]
        answers["number_info"] = call(client, "DID/get_number_info", {"number": did}, auth)
    assert number.status_code == 200
    for key, response in answers.items():
        assert response.status_code == 200, (key, response.text)
        assert key in response.json(), (key, response.json())
    policy = answers["access_policy_info"].json()["access_policy_info"]
    assert {a["name"] for a in policy["attributes"]} == {"cs_profile", "eps_profile"}
    assert all(a["group_name"].startswith("lte.") for a in policy["attributes"])
    counters = answers["full_vd_counter_info"].json()["full_vd_counter_info"]
    assert all({"i_vd_plan", "remaining", "unit", "allocated_amount"} <= set(c) for c in counters)
    assert answers["sim_info"].json()["sim_info"]["imsi"] == card["imsi"]


def test_unknown_things_and_bad_params(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        auth = {"session_id": login(client)}
        missing = call(client, "Account/get_account_info", {"i_account": 1}, auth)
        no_param = call(client, "Account/get_account_info", {}, auth)
        bad_param = call(client, "SIMCard/get_card_list", {"i_account": "x"}, auth)
        unknown = call(client, "Nope/do_it", {}, auth)
        as_json = client.post("/rest/Account/get_account_info", json={"params": {}})
    assert missing.status_code == 200 and missing.json() == {}
    assert no_param.json()["faultcode"] == "Client.Account.get_account_info.param_missing"
    assert bad_param.json()["faultcode"] == "Client.SIMCard.get_card_list.invalid_param"
    assert (
        unknown.status_code == 500
        and unknown.json()["faultcode"] == "Server.Dispatcher.unknown_method"
    )
    assert as_json.json()["faultcode"] == "Client.Request.invalid_content_type"
