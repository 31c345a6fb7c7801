"""The HSS connector: keeps PyHSS's subscribers in line with PortaBilling (group `HSS`).

Every event converges the account's subscriber to PortaBilling's current state (pb_data),
whatever the event type, so repeating a delivery any number of times leaves the same HSS
state and no error:
- a subscriber that should exist is created (its AUC found by IMSI; a missing AUC rejects
  the event with a clear reason) or patched where it differs;
- the subscriber of an IMSI the account no longer has (SIM replaced, account deleted or
  terminated) is deleted; an IMSI now linked to another account is left alone;
- blocked, suspended or inactive accounts keep their subscriber with `enabled: false`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData

from opennsps.connector import Connector, Context, Event, Rejected
from opennsps.connectors.account_events import NO_ACCOUNT, enriched_account
from opennsps.connectors.hss.client import Duplicate, PyHssClient
from opennsps.connectors.hss.desired import (
    HssOptions,
    Subscriber,
    desired_subscriber,
    previous_imsi,
)
from opennsps.connectors.links import LinkStore, link_table, sql_engine

ORPHAN_PAGE = 500
HSS_LINKS = link_table(MetaData(), "hss_links", "imsi", 32)


class HssConnector(Connector):
    status_group = "HSS"
    # What desired.py reads; no balance counters (one PortaBilling call fewer per event).
    pb_data_parts = ("account_info", "sim_info", "access_policy_info", "prev_sim_info")
    options_model = HssOptions  # `config check` validates options with it

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.settings = HssOptions.model_validate(self.options)
        key = self.settings.provisioning_key
        self.hss = PyHssClient(
            self.settings.url,
            provisioning_key=key.get_secret_value() if key else None,
            timeout=self.settings.timeout,
        )
        self.links = LinkStore(sql_engine(self.settings.links, wal=True), HSS_LINKS, "imsi")

    async def close(self) -> None:
        await self.hss.close()
        self.links.close()
        await super().close()

    async def handle(self, event: Event, context: Context) -> dict[str, Any]:
        found = enriched_account(event, "HSS")
        if found is None:
            return {"hss": NO_ACCOUNT}
        i_account, pb_data = found
        wanted = desired_subscriber(pb_data, self.settings)
        linked = await self.links.key_of(i_account)
        removed = await self._remove_stale(i_account, linked, pb_data, wanted)
        action = "absent"
        if wanted is not None:
            action = await self._ensure(wanted)
        wanted_imsi = wanted.imsi if wanted else None
        if wanted_imsi != linked:
            await self.links.link(i_account, wanted_imsi)
        context.log.info(
            "hss converged", i_account=i_account, action=action, removed=removed or None
        )
        return {"hss": action, "removed": removed}

    async def _remove_stale(
        self,
        i_account: int,
        linked: str | None,
        pb_data: dict[str, Any],
        wanted: Subscriber | None,
    ) -> list[str]:
        candidates = {linked, previous_imsi(pb_data)}
        candidates.discard(None)
        if wanted is not None:
            candidates.discard(wanted.imsi)
        removed = []
        for imsi in sorted(str(c) for c in candidates):
            if await self.links.accounts_of(imsi) - {i_account}:
                continue  # that SIM now serves another account
            found = await self.hss.subscriber_by_imsi(imsi)
            if found is not None:
                await self.hss.delete_subscriber(int(found["subscriber_id"]))
                removed.append(imsi)
        return removed

    async def _ensure(self, wanted: Subscriber) -> str:
        current = await self.hss.subscriber_by_imsi(wanted.imsi)
        if current is None:
            auc = await self.hss.auc_by_imsi(wanted.imsi)
            if auc is None:
                raise Rejected(
                    f"the HSS has no AUC for IMSI {wanted.imsi}: load the SIM vendor's file "
                    "(Ki/OPc) into the HSS, then replay this event"
                )
            try:
                await self.hss.create_subscriber({**wanted.fields(), "auc_id": auc["auc_id"]})
                return "created"
            except Duplicate:
                # Created meanwhile (a repeat raced us): converge the one that exists.
                current = await self.hss.subscriber_by_imsi(wanted.imsi)
                if current is None:
                    raise
        changes = wanted.changes(current)
        if not changes:
            return "unchanged"
        # Only what this connector owns: PyHSS manages the rest (serving MME, timestamps)
        # and cannot take its own timestamps back as text.
        await self.hss.update_subscriber(int(current["subscriber_id"]), changes)
        return "updated"

    # Reconciliation (opennsps reconcile)

    async def compare(self, i_account: int, pb_data: dict[str, Any]) -> list[str]:
        """How the HSS differs from PortaBilling for one account; empty when they agree."""
        try:
            wanted = desired_subscriber(pb_data, self.settings)
        except Rejected as exc:
            return [f"cannot be provisioned: {exc}"]
        found = []
        if wanted is not None:
            current = await self.hss.subscriber_by_imsi(wanted.imsi)
            if current is None:
                found.append(f"IMSI {wanted.imsi} is missing from the HSS")
            else:
                found.extend(f"IMSI {wanted.imsi} {d}" for d in wanted.differences(current))
        linked = await self.links.key_of(i_account)
        stale = linked is not None and (wanted is None or linked != wanted.imsi)
        if stale and await self.hss.subscriber_by_imsi(str(linked)) is not None:
            found.append(f"IMSI {linked} is still in the HSS but no longer this account's")
        return found

    async def orphans(self) -> list[str]:
        """HSS subscribers this connector never linked to an account."""
        linked = set((await self.links.all_links()).values())
        found: list[str] = []
        page = 0
        while True:
            rows = await self.hss.subscribers(page, ORPHAN_PAGE)
            found.extend(
                f"HSS subscriber {row.get('subscriber_id')} (IMSI {row.get('imsi')})"
                for row in rows
                if str(row.get("imsi")) not in linked
            )
            if len(rows) < ORPHAN_PAGE:
                return found
            page += 1

    async def linked_accounts(self) -> set[int]:
        """Accounts the HSS holds a subscriber for, as far as this connector provisioned."""
        return set(await self.links.all_links())
