"""Which writes wait for the disk: the worker's own bookkeeping (claims, outcomes, sent
reports) does not, on either engine, since losing it only means work done again;
everything else (events, routing, the API's changes) does."""

from __future__ import annotations

from sqlalchemy import Engine, text

from opennsps.pipeline.runtime import Pipeline
from opennsps.store.event_store import EventStore
from tests.support import settings_for


def setting(engine: Engine) -> str:
    query = "PRAGMA synchronous" if engine.dialect.name == "sqlite" else "SHOW synchronous_commit"
    with engine.connect() as connection:
        return str(connection.execute(text(query)).scalar_one())


def test_only_the_workers_bookkeeping_skips_the_wait_for_the_disk(store_url: str) -> None:
    settings = settings_for(store_url)
    store = EventStore(settings.store)
    store.open()
    pipeline = Pipeline(settings, store.engine)
    try:
        durable, relaxed = setting(store.engine), setting(pipeline.work_engine)
    finally:
        pipeline.work_engine.dispose()
        store.close()
    if store.dialect == "sqlite":
        assert (durable, relaxed) == ("2", "1")  # FULL, NORMAL
    else:
        assert (durable, relaxed) == ("on", "off")
    assert pipeline.queue.engine is pipeline.work_engine
    assert pipeline.outbox.engine is store.engine  # reports taken from the API: durable
