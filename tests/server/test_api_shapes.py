"""The response shapes the service builds are the ones the API documents: one TypedDict per shape (issue 18).

Each shape is defined once, in its domain's schemas.py, and used both by the service (plain dicts, read by the
console with row["key"]) and by FastAPI as the response model. These tests pin the OpenAPI component names
clients know and that each documents exactly its TypedDict's keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.duties.schemas import DrillRead, DutyRead, ScorecardRow
from server.findings.schemas import FindingRead, SharedFindingRead, SharedSubjectRead
from server.findings.service import FindingView
from server.inventory.schemas import RequestRead
from server.settings import load_settings

SHAPES: list[Any] = [FindingRead, SharedFindingRead, SharedSubjectRead, DutyRead, ScorecardRow, DrillRead, RequestRead]


@pytest.fixture(scope="module")
def components(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root: Path = tmp_path_factory.mktemp("shapes")
    settings = load_settings(None, data_dir=root / "data", server={"database_url": f"sqlite:///{root / 'state.db'}"})
    schemas: dict[str, Any] = create_app(settings).openapi()["components"]["schemas"]
    return schemas


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.__name__)
def test_the_api_documents_the_shape_the_service_builds(components: dict[str, Any], shape: Any):
    documented = components[shape.__name__]
    assert set(documented["properties"]) == set(shape.__annotations__)
    assert set(documented["required"]) == set(shape.__required_keys__) == set(shape.__annotations__)


def test_the_platform_role_keys_of_a_finding_pass_through_undocumented(components: dict[str, Any]):
    """Platform roles get `seen_by_agencies` and `related` on each finding; FindingRead lets them through (extra
    keys allowed) without documenting them, as before the shapes were merged."""
    assert components["FindingRead"]["additionalProperties"] is True
    assert set(FindingView.__annotations__) - set(FindingRead.__annotations__) == {"seen_by_agencies", "related"}
    assert not {"seen_by_agencies", "related"} & set(components["FindingRead"]["properties"])
