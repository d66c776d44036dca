"""SNMPv3 USM (pure): RFC 3414 key localization vectors, authentication and AES privacy round trips."""

from __future__ import annotations

import pytest

from collectors.snmp import usm
from collectors.snmp.ber import GET_BULK, encode_pdu
from collectors.snmp.errors import SnmpAuthError, SnmpDecodeError, SnmpError

ENGINE = bytes.fromhex("000000000000000000000002")


@pytest.mark.parametrize(("hash_name", "ku", "kul"), [
    # RFC 3414 §A.3.1 (MD5) and §A.3.2 (SHA), password "maplesyrup"
    ("md5", "9faf3283884e92834ebc9847d8edd963", "526f5eed9fcce26f8964c2930787d82b"),
    ("sha1", "9fb5cc0381497b3793528939ff788d5d79145211", "6695febc9288e36282235fc7151f128497b38f3f"),
])
def test_rfc3414_key_localization_vectors(hash_name: str, ku: str, kul: str) -> None:
    assert usm.master_key(hash_name, b"maplesyrup").hex() == ku
    assert usm.localized_key(hash_name, b"maplesyrup", ENGINE).hex() == kul


def test_blumenthal_extension_appends_hashes_of_the_key_so_far() -> None:
    import hashlib

    key = bytes(range(20))
    extended = usm.extend_key("sha1", key, 32)
    assert extended == (key + hashlib.sha1(key).digest())[:32]
    assert usm.extend_key("sha256", bytes(32), 32) == bytes(32)


@pytest.mark.parametrize(("auth", "priv"), [("SHA", "AES"), ("SHA256", "AES256"), ("SHA512", "AES"), ("MD5", "")])
def test_request_round_trips_through_auth_and_privacy(auth: str, priv: str) -> None:
    keys = usm.UsmKeys.derive("monitor", ENGINE, auth, "authpass123", priv or "AES", "privpass123" if priv else "")
    pdu = encode_pdu(GET_BULK, 77, [((1, 3, 6, 1, 2, 1, 2, 2), None)], error_index=25)
    wire = usm.encode_request(keys, 77, 3, 1200, pdu, salt=b"\x00" * 7 + b"\x01")
    assert usm.peek_msg_id(wire) == 77
    decoded = usm.decode_response(wire, keys)
    assert (decoded.msg_id, decoded.engine_id, decoded.boots, decoded.time) == (77, ENGINE, 3, 1200)
    assert (decoded.pdu_type, decoded.request_id, decoded.error_index) == (GET_BULK, 77, 25)
    assert decoded.varbinds == (((1, 3, 6, 1, 2, 1, 2, 2), None),)
    if priv:
        assert b"\x2b\x06\x01\x02\x01\x02\x02" not in wire  # the OID travels encrypted


def test_tampering_and_wrong_keys_are_refused() -> None:
    keys = usm.UsmKeys.derive("monitor", ENGINE, "SHA256", "authpass123", "AES", "privpass123")
    wire = usm.encode_request(keys, 5, 1, 1, encode_pdu(0xA0, 5, [((1, 3, 6, 1, 2, 1, 1, 5, 0), None)]))
    flipped = wire[:-3] + bytes((wire[-3] ^ 1,)) + wire[-2:]
    with pytest.raises(SnmpAuthError, match="authentication"):
        usm.decode_response(flipped, keys)
    other = usm.UsmKeys.derive("monitor", ENGINE, "SHA256", "other-auth-key", "AES", "privpass123")
    with pytest.raises(SnmpAuthError, match="authentication"):
        usm.decode_response(wire, other)
    wrong_priv = usm.UsmKeys.derive("monitor", ENGINE, "SHA256", "authpass123", "AES", "other-priv-key")
    with pytest.raises(SnmpError):
        usm.decode_response(wire, wrong_priv)
    with pytest.raises(SnmpAuthError, match="before the keys"):
        usm.decode_response(wire, None)
    with pytest.raises(SnmpDecodeError):
        usm.decode_response(wire[:40], keys)


def test_discovery_request_is_unauthenticated_and_reportable() -> None:
    wire = usm.discovery_request(9)
    assert usm.peek_msg_id(wire) == 9
    assert b"\x04\x01\x04" in wire  # msgFlags: reportable, no auth, no priv
    with pytest.raises(SnmpAuthError, match="unauthenticated"):  # only a Report may come back unauthenticated
        usm.decode_response(wire, None)
    assert usm.supports("SHA256", "AES256", True) and not usm.supports("SHA", "DES", True)
    assert not usm.supports("SHA", "AES256C", True) and usm.supports("SHA", "DES", False)
