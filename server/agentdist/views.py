"""/agent/install.sh, /agent/bundle/<arch> (+ /sha256): the offline agent install; /api/v1/agent-bundles.

The install script and the bundles are public: an agency host fetches them before it has any credential, and they
hold no secret (the one-time enrolment token is given by the operator on the host's command line, never served).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response

from core.agentbundle import Arch
from server.access import Public, Scoped
from server.agentdist import service
from server.agentdist.schemas import BundleRead
from server.errors import NotFoundError

router = APIRouter(tags=["agent install"])


def _bundle(request: Request, arch: Arch) -> service.Bundle:
    bundle = service.find(service.bundle_dir(request.app.state.settings), arch)
    if bundle is None:
        raise NotFoundError(f"no agent bundle for {arch} on this server (egovmon agent bundle build)", reason="no_bundle")
    return bundle


@router.get("/agent/install.sh", dependencies=[Public], response_class=PlainTextResponse)
def install_script() -> Response:
    """The agent installer (POSIX sh): `curl -fsS URL/agent/install.sh | sh -s -- --server URL --token TOKEN`."""
    script = resources.files("server.agentdist").joinpath("install.sh").read_bytes()
    return Response(script, media_type="text/x-shellscript; charset=utf-8", headers={"Cache-Control": "no-cache"})


@router.get("/agent/bundle/{arch}", dependencies=[Public], response_class=FileResponse)
def bundle_tarball(arch: Arch, request: Request) -> FileResponse:
    """The offline agent bundle for `arch` (gzip tarball of wheels, install.sh and SHA256SUMS)."""
    bundle = _bundle(request, arch)
    return FileResponse(bundle.tarball, media_type="application/gzip", filename=bundle.info.tarball,
                        headers={"X-Checksum-SHA256": bundle.info.tarball_sha256})  # fmt: skip


@router.get("/agent/bundle/{arch}/sha256", dependencies=[Public], response_class=PlainTextResponse)
def bundle_checksum(arch: Arch, request: Request) -> PlainTextResponse:
    """The bundle's SHA-256 in `sha256sum` format (install.sh checks the download against it)."""
    bundle = _bundle(request, arch)
    return PlainTextResponse(f"{bundle.info.tarball_sha256}  {bundle.info.tarball}\n")


@router.get("/api/v1/agent-bundles", response_model=list[BundleRead])
def list_bundles(caller: Scoped, request: Request) -> list[BundleRead]:
    """The agent bundles this server offers, with their versions and checksums."""
    return [
        BundleRead(arch=b.info.arch, version=b.info.version, python_versions=b.info.python_versions, platform=b.info.platform,
                   built_at=b.info.built_at, tarball_sha256=b.info.tarball_sha256, tarball_bytes=b.info.tarball_bytes,
                   wheels=len(b.info.wheels), url=f"/agent/bundle/{b.info.arch}")
        for b in service.available(service.bundle_dir(request.app.state.settings))
    ]  # fmt: skip
