"""An HSS stand-in loaded like a production HSS (APNs configured, the SIM vendor's AUC
file loaded), and the HSS connector's handler definition pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from opennsps.sandbox.hss import HssSettings, HssState, create_hss_app
from tests.pipeline.harness import FAST_RETRY
from tests.support import running

PROVISIONING_KEY = "hss-provisioning-key-0123"
PROFILES = {
    "eps-std": {"apn_ids": [1, 2], "ambr_dl": 100000, "ambr_ul": 50000},
    "eps-premium": {"apn_ids": [1, 2], "default_apn": 2, "ambr_dl": 500000, "ambr_ul": 200000},
    "eps-iot": {"apn_ids": [1], "ambr_dl": 256, "ambr_ul": 256},
}


class HssAt(Protocol):
    """An HSS with PyHSS's API at `url`: the stand-in or the real PyHSS."""

    url: str


@dataclass
class Hss:
    url: str
    state: HssState

    def subscribers(self) -> dict[str, dict[str, Any]]:
        """IMSI → subscriber, read over the HSS's own API."""
        rows = httpx.get(f"{self.url}/hss/dump", timeout=10).json()["subscriber"]
        return {row["imsi"]: row for row in rows}


@contextmanager
def hss_server(dataset: Path | None = None, provisioning_key: str | None = None) -> Iterator[Hss]:
    app = create_hss_app(HssSettings(provisioning_key=provisioning_key))
    state: HssState = app.state.hss
    state.create_apn({"apn": "internet", "apn_ambr_dl": 100000, "apn_ambr_ul": 50000})
    state.create_apn({"apn": "ims", "apn_ambr_dl": 128, "apn_ambr_ul": 128})
    if dataset is not None:
        state.load_sims_from_dataset(str(dataset))
    with running(app) as url:
        yield Hss(url, state)


def reconcile(config: Path, *args: str) -> tuple[int, str]:
    """`opennsps reconcile hss -c CONFIG ARGS`: its exit code and output."""
    from typer.testing import CliRunner

    from opennsps.cli import app as cli

    result = CliRunner().invoke(cli, ["reconcile", "hss", "-c", str(config), *args])
    return result.exit_code, result.output


def hss_options(hss: HssAt, links: Path, **extra: Any) -> dict[str, Any]:
    return {
        "url": hss.url,
        "links": f"sqlite:///{links}",
        "profiles": PROFILES,
        "provisioning_key": PROVISIONING_KEY,
        **extra,
    }


def hss_handler(hss: HssAt, links: Path, **options: Any) -> dict[str, Any]:
    return {
        "id": "hss",
        "name": "HSS",
        "events": ["Subscriber/*", "SIM/*"],
        "type": "python",
        "python": {
            "entry_point": "opennsps.connectors.hss:HssConnector",
            "options": hss_options(hss, links, **options),
            "timeout": 10,
        },
        "retry": FAST_RETRY,
        "status_group": "HSS",
    }
