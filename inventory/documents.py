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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime
from typing import TypeVar

import yaml

from core.jsontypes import JsonObject, JsonValue
from inventory.registry import (
    CLASSIFICATIONS,
    EXEMPT,
    SITE_KINDS,
    SITE_OTHER,
    Allotment,
    Declaration,
    Exemption,
    PlanPrefix,
    RegisteredHost,
    Registry,
    Site,
    System,
    Website,
    validate_prefix,
)

SECTIONS: dict[str, type[Declaration]] = {
    "sites": Site, "address_plan": PlanPrefix, "exemptions": Exemption,
    "systems": System, "websites": Website, "hosts": RegisteredHost, "allotments": Allotment,
}  # fmt: skip
REGISTRY_FIELD = {"sites": "sites", "address_plan": "plan", "exemptions": "exemptions",
                  "systems": "systems", "websites": "websites", "hosts": "hosts", "allotments": "allotments"}  # fmt: skip


D = TypeVar("D", Site, PlanPrefix, Exemption, System, Website, RegisteredHost, Allotment)


def _of(entries: Iterable[Declaration], cls: type[D]) -> tuple[D, ...]:
    return tuple(e for e in entries if isinstance(e, cls))


def registry_of(sections: Mapping[str, Iterable[Declaration]]) -> Registry:
    """The registry holding each document section's declarations (section name → entries of its kind)."""
    def section(name: str, cls: type[D]) -> tuple[D, ...]:
        return _of(sections.get(name, ()), cls)

    return Registry(sites=section("sites", Site), plan=section("address_plan", PlanPrefix),
                    exemptions=section("exemptions", Exemption), systems=section("systems", System),
                    websites=section("websites", Website), hosts=section("hosts", RegisteredHost),
                    allotments=section("allotments", Allotment))  # fmt: skip


def sections_of(registry: Registry) -> dict[str, tuple[Declaration, ...]]:
    """The registry's declarations per document section, in SECTIONS order."""
    return {"sites": registry.sites, "address_plan": registry.plan, "exemptions": registry.exemptions,
            "systems": registry.systems, "websites": registry.websites, "hosts": registry.hosts,
            "allotments": registry.allotments}  # fmt: skip


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


def _expires(value: object) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "y", "是"):
        return True
    if text in ("false", "no", "0", "n", "", "否"):
        return False
    raise ValueError(f"{value!r} is not true/false")


def _prefix(value: object) -> str:
    try:
        return validate_prefix(str(value))
    except ValueError as exc:
        raise KeyError("prefix", str(exc)) from exc


def _vlan(value: object) -> int | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str | int | float):  # a list or a mapping from YAML
        raise ValueError(f"{value!r} is not a VLAN number")
    return int(value)


# Field → its conversion from document text, applied in this order (the first failure is the entry's error):
# a KeyError(field, message) names the field, a ValueError the entry.
CONVERSIONS: dict[str, Callable[[object], object]] = {
    "prefix": _prefix, "expires_at": _expires, "approved_data_centre": _bool, "accepted": _bool, "on_platform": _bool,
    "shared": _bool, "vlan": _vlan,
}  # fmt: skip
# Section → its field with a closed set of values, the value when absent, and the set.
CHOICES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "sites": ("kind", SITE_OTHER, SITE_KINDS), "exemptions": ("classification", EXEMPT, CLASSIFICATIONS),
}  # fmt: skip
TEXT_FIELDS = ("purpose", "name", "note")  # where "" is a value; elsewhere "" means absent


def _convert(values: dict[str, object]) -> None:
    """Convert the fields of CONVERSIONS in place, in its order."""
    for name, convert in CONVERSIONS.items():
        if name in values:
            values[name] = convert(values[name])


def _check_choice(section: str, values: Mapping[str, object]) -> None:
    """Raises KeyError(field, message) when the section's closed field holds another value."""
    if section in CHOICES:
        name, default, allowed = CHOICES[section]
        if values.get(name, default) not in allowed:
            raise KeyError(name, f"{values[name]!r} is not one of {', '.join(allowed)}")


def _check_scalars(values: Mapping[str, object]) -> None:
    """Raises KeyError(field, message) for a list or mapping left in a field: a declaration holds single values (a
    mapping as a host name cannot even be looked up, and no column stores one)."""
    for name, value in values.items():
        if isinstance(value, list | dict | set | tuple):
            raise KeyError(name, "expected a single value, not a list or mapping")


def _entry(section: str, raw: Mapping[str, object]) -> Declaration:
    """One declaration from a mapping; raises KeyError(field, message) or ValueError."""
    cls = SECTIONS[section]
    values = dict(raw)
    if section == "exemptions" and "expires" in values:
        values["expires_at"] = values.pop("expires")
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise KeyError(f"unknown field(s) {sorted(unknown)}")
    _convert(values)
    _check_choice(section, values)
    _check_scalars(values)
    make: Callable[..., Declaration] = cls  # the dataclass checks the names; the values were converted above
    try:
        return make(**{key: None if value == "" and key not in TEXT_FIELDS else value for key, value in values.items()})
    except TypeError as exc:
        raise KeyError(f"missing field: {exc}") from exc


def _agencies(items: Iterable[object], errors: dict[str, str]) -> list[Agency]:
    """The document's agencies; each bad one is added to `errors`."""
    agencies = []
    for i, raw in enumerate(items):
        if not isinstance(raw, dict) or not raw.get("code") or not raw.get("name"):
            errors[f"agencies[{i}]"] = "needs code and name"
            continue
        agencies.append(Agency(str(raw["code"]), str(raw["name"])))
    return agencies


def _section(section: str, items: Iterable[object], errors: dict[str, str]) -> list[Declaration]:
    """The declarations of one section; each bad entry is added to `errors` as `section[i]` or `section[i].field`."""
    entries = []
    for i, raw in enumerate(items):
        where = f"{section}[{i}]"
        if not isinstance(raw, dict):
            errors[where] = "expected a mapping"
            continue
        try:
            entries.append(_entry(section, raw))
        except KeyError as exc:
            field, *message = exc.args
            errors[f"{where}.{field}" if message else where] = message[0] if message else str(field)
        except ValueError as exc:
            errors[where] = str(exc)
    return entries


def _items(data: Mapping[object, object], section: str, errors: dict[str, str]) -> Iterable[object]:
    """A section's entries (absent or empty: none); a scalar where a list belongs is an error."""
    items = data.get(section) or []
    if isinstance(items, Iterable):
        return items
    errors[section] = "expected a list"
    return []


def from_mapping(data: object) -> Document:
    """A document from parsed YAML/JSON. Raises DocumentError with every problem found."""
    if not isinstance(data, dict):
        raise DocumentError({"document": "expected a mapping of sections"})
    errors: dict[str, str] = {}
    unknown = set(data) - set(SECTIONS) - {"agencies"}
    if unknown:
        errors["document"] = f"unknown section(s) {sorted(unknown)}"
    agencies = _agencies(_items(data, "agencies", errors), errors)
    sections = {section: _section(section, _items(data, section, errors), errors) for section in SECTIONS}
    if errors:
        raise DocumentError(errors)
    return Document(tuple(agencies), registry_of(sections))


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
    out: dict[str, list[dict[str, object]]] = {"agencies": [asdict(a) for a in document.agencies]}
    for section, name in REGISTRY_FIELD.items():
        items = []
        for entry in getattr(document.registry, name):
            values = {k: v for k, v in asdict(entry).items() if v not in (None, "") and not (k == "shared" and v is False)}
            if "expires_at" in values:
                values["expires"] = values.pop("expires_at").date().isoformat()
            items.append(values)
        out[section] = items
    return yaml.safe_dump(out, allow_unicode=True, sort_keys=False)


def _results(data: JsonValue, what: str) -> list[JsonObject]:
    """The objects of a NetBox export: a list, or `{"results": [...]}` (other items are skipped)."""
    if isinstance(data, dict) and "results" in data:
        data = data["results"]
    if isinstance(data, list):
        return [d for d in data if isinstance(d, dict)]
    if isinstance(data, str | dict) or not data:  # no objects in them
        return []
    raise DocumentError({what: "expected a list of objects or {results: [...]}"})


def _slug(value: JsonValue) -> JsonValue:
    """A NetBox reference (`{"slug": ...}`) or a plain value, as a code; None when empty."""
    return value.get("slug") if isinstance(value, dict) else (str(value) if value else None)


def _field(item: JsonObject, name: str, where: str) -> JsonValue:
    """`item[name]`. Raises DocumentError naming `where` and the field."""
    if name not in item:
        raise DocumentError({f"{where}.{name}": "required"})
    return item[name]


def _object(item: JsonObject, name: str, where: str) -> JsonObject:
    """The nested object `item[name]`; absent or empty: {}. Raises DocumentError for a scalar or a list."""
    value = item.get(name) or {}
    if not isinstance(value, dict):
        raise DocumentError({f"{where}.{name}": "expected an object"})
    return value


def _netbox_sites(sites: JsonValue) -> list[JsonObject]:
    found = []
    for i, s in enumerate(_results(sites, "sites")):
        slug = _field(s, "slug", f"sites[{i}]")
        found.append({"code": slug, "name": s.get("name", slug), "kind": SITE_OTHER, "agency": _slug(s.get("tenant"))})
    return found


def _netbox_plan(prefixes: JsonValue, default_agency: str) -> list[JsonObject]:
    """Active and reserved prefixes."""
    found = []
    for i, p in enumerate(_results(prefixes, "prefixes")):
        where = f"prefixes[{i}]"
        if _object(p, "status", where).get("value", "active") not in ("active", "reserved"):
            continue
        vlan = p.get("vlan")
        found.append({"prefix": _field(p, "prefix", where), "agency": _slug(p.get("tenant")) or default_agency,
                      "site": _slug(p.get("site")), "purpose": p.get("description", "") or "",
                      "vlan": vlan.get("vid") if isinstance(vlan, dict) else None})  # fmt: skip
    return found


def _address(item: JsonObject, where: str) -> str | None:
    """The address of NetBox's `primary_ip` object, without its prefix length. Raises DocumentError."""
    address = _object(item, "primary_ip", where).get("address", "")
    if not isinstance(address, str):
        raise DocumentError({f"{where}.primary_ip.address": "expected text"})
    return address.split("/")[0] or None


def _netbox_hosts(devices: JsonValue, ip_addresses: JsonValue, default_agency: str) -> list[JsonObject]:
    """Named devices, then the DNS names of IP addresses that name no device."""
    hosts: list[JsonObject] = [
        {"name": d["name"], "agency": _slug(d.get("tenant")) or default_agency, "site": _slug(d.get("site")),
         "address": _address(d, f"devices[{i}]")}
        for i, d in enumerate(_results(devices, "devices")) if d.get("name")
    ]  # fmt: skip
    known = {str(h["name"]) for h in hosts}
    for address in _results(ip_addresses, "ip_addresses"):
        name = address.get("dns_name")
        if name and str(name) not in known:
            hosts.append({"name": name, "agency": _slug(address.get("tenant")) or default_agency,
                          "address": str(address.get("address", "")).split("/")[0] or None})
            known.add(str(name))
    return hosts


def from_netbox(*, sites: JsonValue = None, prefixes: JsonValue = None, devices: JsonValue = None,
                ip_addresses: JsonValue = None, default_agency: str) -> Document:
    """A document from NetBox REST exports; entries without a tenant belong to `default_agency`.

    Raises DocumentError for an export of the wrong shape or a declaration that is not valid.
    """
    return from_mapping({"sites": _netbox_sites(sites), "address_plan": _netbox_plan(prefixes, default_agency),
                         "hosts": _netbox_hosts(devices, ip_addresses, default_agency)})  # fmt: skip
