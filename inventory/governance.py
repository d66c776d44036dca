"""Which address-plan declarations an agency may make alone, and which need the e-gov office's consent (pure).

Article 9: no agency builds a network of its own without consulting the e-gov
office. The office allots prefixes to agencies (`Allotment`); inside its own
allotment an agency declares plan entries and exemptions itself, each at most
`MAX_DECLARATION_WIDTH` wide. Anything else — `0.0.0.0/0`, `::/0`, a /8, a prefix
outside the agency's allotments (another agency's subnet included) — is not a
declaration but a request, which an admin or security user approves with an
approval reference (批准文号) or rejects. Admins declare directly.

`approval_needed` answers with the reason a declaration needs approval, or None.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from inventory.registry import Allotment

# The widest single prefix an agency declares without approval: not shorter than /16 (IPv4) or /48 (IPv6).
MAX_DECLARATION_WIDTH: Final = {4: 16, 6: 48}

TOO_WIDE: Final = "too_wide"  # wider than MAX_DECLARATION_WIDTH
OUTSIDE_ALLOTMENT: Final = "outside_allotment"  # not inside any allotment of the declaring agency
SHARED: Final = "shared"  # a platform-wide entry: only admins declare those
REASONS: Final = (TOO_WIDE, OUTSIDE_ALLOTMENT, SHARED)


def approval_needed(prefix: str, agency: str, allotments: Iterable[Allotment], *, shared: bool = False) -> str | None:
    """Why an agency user's declaration of `prefix` for `agency` needs approval, or None when it may be stored.

    Raises:
        ValueError: `prefix` is not an IPv4/IPv6 prefix.
    """
    network = ipaddress.ip_network(prefix, strict=False)
    if shared:
        return SHARED
    if network.prefixlen < MAX_DECLARATION_WIDTH[network.version]:
        return TOO_WIDE
    for allotment in allotments:
        allotted = ipaddress.ip_network(allotment.prefix, strict=False)
        if allotment.agency == agency and allotted.version == network.version and network.subnet_of(allotted):  # type: ignore[arg-type]
            return None
    return OUTSIDE_ALLOTMENT
