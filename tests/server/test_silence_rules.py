"""What `server.alerting.service.create_silence` refuses before anything is stored: agents, matchers that do not
parse, a silence without matchers or comment or with a duration out of range, and a caller limited to an agency
whose role is not `agency` (the users API cannot create one; the service refuses it all the same)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from server.access import Access
from server.alerting.schemas import MAX_SILENCE_MINUTES
from server.alerting.service import create_silence
from server.auth.principal import Principal
from server.errors import ApiError, BadRequestError, ForbiddenError

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NOC = Access(Principal("user", 1, "noc-1", "noc"), agency_id=None, agency_code=None)


def refusal(access: Access, matchers: list[str], minutes: float = 60, comment: str = "变更窗口") -> tuple[type[ApiError], str, str]:
    """The error create_silence raises, with its reason and message; the session is never reached."""
    with Session() as session, pytest.raises(ApiError) as raised:
        create_silence(session, access=access, matchers=matchers, minutes=minutes, comment=comment, now=NOW)
    assert not session.new  # nothing was added
    return type(raised.value), raised.value.reason, str(raised.value)


@pytest.mark.parametrize(("matchers", "minutes", "comment"), [
    ([], 60, "变更窗口"),
    (["  ", ""], 60, "变更窗口"),
    (["alertname=HostMemoryLow"], 60, "   "),
    (["alertname=HostMemoryLow"], 0, "变更窗口"),
    (["alertname=HostMemoryLow"], MAX_SILENCE_MINUTES + 1, "变更窗口"),
])
def test_a_silence_needs_matchers_a_comment_and_a_duration_in_range(matchers, minutes, comment):
    assert refusal(NOC, matchers, minutes, comment) == (
        BadRequestError, "bad_silence", f"a silence needs matchers, a comment and 0 < duration_minutes <= {MAX_SILENCE_MINUTES}")


def test_the_first_matcher_that_does_not_parse_is_named_before_the_other_checks():
    kind, reason, message = refusal(NOC, ["alertname=HostMemoryLow", "host=~("], comment="")
    assert (kind, reason) == (BadRequestError, "bad_silence")
    assert "host=~(" in message


def test_an_agent_cannot_silence():
    agent = Access(Principal("agent", 7, "7", "agent", agency_id=3, host_id=9), agency_id=3, agency_code="health")
    assert refusal(agent, ["alertname=HostMemoryLow"])[:2] == (ForbiddenError, "agent_cannot_read")


def test_a_caller_limited_to_an_agency_silences_only_with_the_agency_role():
    scoped_noc = Access(Principal("user", 2, "noc-2", "noc"), agency_id=3, agency_code="health")
    assert refusal(scoped_noc, ["alertname=HostMemoryLow"]) == (ForbiddenError, "role_required", "this role cannot silence")
