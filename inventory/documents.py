"""Inventory documents: YAML and CSV in, YAML out, and NetBox exports in (pure: text ↔ `Registry`).

The YAML layout is the one `egovmon init` writes (cli/templates/inventory.yaml):
top-level `agencies`, `sites`, `address_plan`, `exemptions`, `systems`,
`websites`, `hosts`, `allotments` (the prefixes the e-gov office allots to each
agency, see inventory/governance.py). CSV carries one kind per file, with a header row naming the
same keys. NetBox's REST exports (`/api/dcim/sites/`, `/api/ipam/prefixes/`,
`/api/dcim/devices/`, `/api/ipam/ip-addresses/`, as JSON lists or `{"results": [...]}`)
map to sites, plan prefixes and hosts; the agency is NetBox's tenant slug.
Every error names the entry and the field (`address_plan[2].prefix: ...`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime
from typing import Any

import yaml

from inventory.registry import (
    CLASSIFICATIONS,
    SITE_KINDS,
    SITE_OTHER,
    Allotment,
    Exemption,
    PlanPrefix,
    RegisteredHost,
    Registry,
    Site,
    System,
    Website,
    validate_prefix,
)

SECTIONS: dict[str, type] = {
    "sites": Site, "address_plan": PlanPrefix, "exemptions": Exemption,
    "systems": System, "websites": Website, "hosts": RegisteredHost, "allotments": Allotment,
}  # fmt: skip
REGISTRY_FIELD = {"sites": "sites", "address_plan": "plan", "exemptions": "exemptions",
                  "systems": "systems", "websites": "websites", "hosts": "hosts", "allotments": "allotments"}  # fmt: skip


class DocumentError(ValueError):
    """An inventory document that cannot be loaded; `errors` maps `section[i].field` to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{where}: {what}" for where, what in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Agency:
    code: str
    name: str


@dataclass(frozen=True)
class Document:
    agencies: tuple[Agency, ...]
    registry: Registry


def _expires(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "y", "是"):
        return True
    if text in ("false", "no", "0", "n", "", "否"):
        return False
    raise ValueError(f"{value!r} is not true/false")


def _entry(section: str, raw: dict[str, Any]) -> Any:
    """One declaration from a mapping; raises ValueError naming the field."""
    cls = SECTIONS[section]
    known = {f.name for f in fields(cls)}
    values = dict(raw)
    if section == "exemptions" and "expires" in values:
        values["expires_at"] = values.pop("expires")
    unknown = set(values) - known
    if unknown:
        raise KeyError(f"unknown field(s) {sorted(unknown)}")
    for name in ("prefix",):
        if name in values:
            try:
                values[name] = validate_prefix(str(values[name]))
            except ValueError as exc:
                raise KeyError(name, str(exc)) from exc
    if "expires_at" in values:
        values["expires_at"] = _expires(values["expires_at"])
    for flag in ("approved_data_centre", "accepted", "on_platform", "shared"):
        if flag in values:
            values[flag] = _bool(values[flag])
    if "vlan" in values:
        values["vlan"] = None if values["vlan"] in (None, "") else int(values["vlan"])
    if section == "sites" and values.get("kind", SITE_OTHER) not in SITE_KINDS:
        raise KeyError("kind", f"{values['kind']!r} is not one of {', '.join(SITE_KINDS)}")
    if section == "exemptions" and values.get("classification", "exempt") not in CLASSIFICATIONS:
        raise KeyError("classification", f"{values['classification']!r} is not one of {', '.join(CLASSIFICATIONS)}")
    for key, value in list(values.items()):
        if value == "" and key not in ("purpose", "name", "note"):
            values[key] = None
    try:
        return cls(**values)
    except TypeError as exc:
        raise KeyError(f"missing field: {exc}") from exc


def from_mapping(data: dict[str, Any]) -> Document:
    """A document from parsed YAML/JSON. Raises DocumentError with every problem found."""
    if not isinstance(data, dict):
        raise DocumentError({"document": "expected a mapping of sections"})
    errors: dict[str, str] = {}
    unknown = set(data) - set(SECTIONS) - {"agencies"}
    if unknown:
        errors["document"] = f"unknown section(s) {sorted(unknown)}"
    agencies = []
    for i, raw in enumerate(data.get("agencies") or []):
        if not isinstance(raw, dict) or not raw.get("code") or not raw.get("name"):
            errors[f"agencies[{i}]"] = "needs code and name"
            continue
        agencies.append(Agency(str(raw["code"]), str(raw["name"])))
    sections: dict[str, list[Any]] = {name: [] for name in SECTIONS}
    for section in SECTIONS:
        for i, raw in enumerate(data.get(section) or []):
            where = f"{section}[{i}]"
            if not isinstance(raw, dict):
                errors[where] = "expected a mapping"
                continue
            try:
                sections[section].append(_entry(section, raw))
            except KeyError as exc:
                field, *message = exc.args
                errors[f"{where}.{field}" if message else where] = message[0] if message else str(field)
            except ValueError as exc:
                errors[where] = str(exc)
    if errors:
        raise DocumentError(errors)
    registry = Registry(**{REGISTRY_FIELD[name]: tuple(items) for name, items in sections.items()})
    return Document(tuple(agencies), registry)


def load_yaml(text: str) -> Document:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DocumentError({"document": f"not YAML: {exc}"}) from exc
    return from_mapping(data or {})


def load_csv(section: str, text: str) -> Document:
    """One section from CSV with a header row. Raises DocumentError."""
    if section not in SECTIONS and section != "agencies":
        raise DocumentError({"section": f"{section!r} is not one of {', '.join(['agencies', *SECTIONS])}"})
    rows = [dict(row) for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))]
    return from_mapping({section: rows})


def dump_yaml(document: Document) -> str:
    """The document as YAML that `load_yaml` reads back to the same document."""
    out: dict[str, Any] = {"agencies": [asdict(a) for a in document.agencies]}
    for section, name in REGISTRY_FIELD.items():
        items = []
        for entry in getattr(document.registry, name):
            values = {k: v for k, v in asdict(entry).items() if v not in (None, "") and not (k == "shared" and v is False)}
            if "expires_at" in values:
                values["expires"] = values.pop("expires_at").date().isoformat()
            items.append(values)
        out[section] = items
    return yaml.safe_dump(out, allow_unicode=True, sort_keys=False)


def _results(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict) and "results" in data:
        data = data["results"]
    return [d for d in data or [] if isinstance(d, dict)]


def _slug(value: Any) -> str | None:
    return value.get("slug") if isinstance(value, dict) else (str(value) if value else None)


def from_netbox(*, sites: Any = None, prefixes: Any = None, devices: Any = None, ip_addresses: Any = None,
                default_agency: str) -> Document:
    """A document from NetBox REST exports; entries without a tenant belong to `default_agency`."""
    site_entries = [
        {"code": s["slug"], "name": s.get("name", s["slug"]), "kind": SITE_OTHER, "agency": _slug(s.get("tenant"))}
        for s in _results(sites)
    ]
    plan = [
        {"prefix": p["prefix"], "agency": _slug(p.get("tenant")) or default_agency, "site": _slug(p.get("site")),
         "purpose": p.get("description", "") or "", "vlan": (p.get("vlan") or {}).get("vid") if isinstance(p.get("vlan"), dict) else None}
        for p in _results(prefixes) if (p.get("status") or {}).get("value", "active") in ("active", "reserved")
    ]  # fmt: skip
    hosts = [
        {"name": d["name"], "agency": _slug(d.get("tenant")) or default_agency, "site": _slug(d.get("site")),
         "address": (d.get("primary_ip") or {}).get("address", "").split("/")[0] or None}
        for d in _results(devices) if d.get("name")
    ]  # fmt: skip
    known = {h["name"] for h in hosts}
    for address in _results(ip_addresses):
        name = address.get("dns_name")
        if name and name not in known:
            hosts.append({"name": name, "agency": _slug(address.get("tenant")) or default_agency,
                          "address": str(address.get("address", "")).split("/")[0] or None})
            known.add(name)
    return from_mapping({"sites": site_entries, "address_plan": plan, "hosts": hosts})
