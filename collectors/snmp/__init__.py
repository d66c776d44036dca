"""SNMP collection: polling network devices (v2c, v3 authPriv), traps, topology discovery.

Pure cores: `ber` (SNMPv2c message codec, RFC 3416 over BER), `walk` (GETBULK walk
bookkeeping), `tables` and `modules` (declarative OID tables → samples and
observations), `discovery` (neighbours → devices to poll). Shells: `engine`
(UDP transports: our asyncio v2c engine, pysnmp 7 for v3), `poller` (many devices,
bounded concurrency, per-device status), `traps` (receiver), `collector` (the agent's).
Nothing happens at import.
"""
