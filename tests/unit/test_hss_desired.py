"""What the HSS connector writes to PyHSS: only its own fields, only those that differ,
never `msisdn: null` (PyHSS answers 500 to it)."""

from __future__ import annotations

from opennsps.connectors.hss.desired import Subscriber

WANTED = Subscriber(
    imsi="001010000000001",
    msisdn="420700000001",
    enabled=False,
    default_apn=1,
    apn_list="1,2",
    ue_ambr_dl=100000,
    ue_ambr_ul=50000,
)
# What PyHSS answers for an attached subscriber: its own fields beside ours.
IN_PYHSS = {
    "subscriber_id": 4,
    "imsi": "001010000000001",
    "msisdn": "420700000001",
    "enabled": True,
    "default_apn": 1,
    "apn_list": "1, 2",
    "ue_ambr_dl": 100000,
    "ue_ambr_ul": 50000,
    "auc_id": 9,
    "serving_mme": "mme01.epc.example",
    "serving_mme_timestamp": "2026-11-29T14:46:56Z",
    "last_modified": "2026-11-29T14:46:50Z",
    "attributes": [],
}


def test_a_change_sends_only_the_owned_fields_that_differ() -> None:
    assert WANTED.changes(IN_PYHSS) == {"enabled": False}
    assert WANTED.changes({**IN_PYHSS, "enabled": False}) == {}
    assert WANTED.differences(IN_PYHSS) == ["enabled: HSS has True, PortaBilling wants False"]


def test_no_number_is_never_sent_as_null() -> None:
    numberless = Subscriber(**{**WANTED.__dict__, "msisdn": None})
    assert "msisdn" not in numberless.fields()
    assert numberless.changes(IN_PYHSS) == {"msisdn": "", "enabled": False}
    assert numberless.changes({**IN_PYHSS, "msisdn": "", "enabled": False}) == {}
