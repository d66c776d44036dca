"""The `flow:` section of the agent's settings: NetFlow/IPFIX reception and aggregation (`collectors.flow`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FlowSettings(BaseModel):
    """Flow reception and aggregation (collector hosts next to core routers and firewalls)."""

    model_config = ConfigDict(extra="forbid")

    listen_host: str = Field("0.0.0.0", description="Address to receive NetFlow/IPFIX on")
    listen_port: int = Field(2055, ge=0, le=65535, description="UDP port (0: any free port)")
    receive_buffer_bytes: int = Field(32 << 20, ge=1 << 16, description="Socket receive buffer asked for")
    approved_prefixes: list[str] = Field(default_factory=list, description="The approved address plan (extranet prefixes)")
    internal_prefixes: list[str] = Field(
        default_factory=lambda: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"],
        description="Address space that counts as internal: internal traffic outside the plan is reported",
    )
    top_n: int = Field(20, ge=1, le=1000, description="Conversations kept per exporter and interval")
