"""The agent that `egovmon up` runs next to its embedded server, so one command monitors this machine."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx

from agent.settings import load_agent_settings
from server.settings import Settings

log = logging.getLogger(__name__)

LOCAL_AGENCY = ("egov-office", "市电子政务办公室")


def _enrollment_token(settings: Settings) -> str:
    """A fresh one-time token for the platform's own agency, made directly in the state database."""
    from sqlalchemy import select

    from server.agencies.models import Agency
    from server.agencies.service import create_agency
    from server.agents.service import create_enrollment_token
    from server.database import make_engine, make_sessionmaker, transaction

    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            now = datetime.now(UTC)
            agency_id = session.scalar(select(Agency.id).where(Agency.code == LOCAL_AGENCY[0]))
            if agency_id is None:
                agency_id = create_agency(session, actor="system:up", code=LOCAL_AGENCY[0], name=LOCAL_AGENCY[1], now=now).id
            _, secret = create_enrollment_token(
                session, actor="system:up", agency_id=agency_id, ttl=timedelta(minutes=10), note="egovmon up", now=now
            )
    finally:
        engine.dispose()
    return secret


def _wait_ready(url: str, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


def start_local_agent(url: str, settings: Settings) -> threading.Event:
    """Enrol (once) and run an agent against the server at `url` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()

    def main() -> None:
        from agent.runtime import NotEnrolledError, build, enroll

        if not _wait_ready(url, stop):
            return
        agent_settings = load_agent_settings(None, state_dir=settings.data_dir / "agent", server_url=url, metrics={"listen": None})
        try:
            agent = build(agent_settings)
        except NotEnrolledError:
            enroll(url, _enrollment_token(settings), hostname=socket.gethostname(), state_dir=agent_settings.state_dir)
            agent = build(agent_settings)
        log.info("local agent %s monitors this host (%s)", agent.credential.agent_id, agent.credential.hostname)
        loop = asyncio.new_event_loop()
        task = loop.create_task(agent.run())
        threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(task.cancel)), daemon=True).start()
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    threading.Thread(target=main, name="egovmon-local-agent", daemon=True).start()
    return stop
