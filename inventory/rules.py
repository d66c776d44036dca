"""The finding rules as data: id, the article it cites, severity, and texts in Chinese and English.

Articles are those of the city's E-Government Management Measures (see the
team's ARCHITECTURE.md). Titles and hints are templates with `{subject}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    article_zh: str
    article_en: str
    severity: str  # info, warning, critical
    title_zh: str
    title_en: str
    hint_zh: str
    hint_en: str
    escalate_at_confidence: float | None = None  # critical from this confidence on

    def text(self, language: str, subject: str) -> dict[str, str]:
        zh = language == "zh"
        return {
            "title": (self.title_zh if zh else self.title_en).format(subject=subject),
            "article": self.article_zh if zh else self.article_en,
            "hint": (self.hint_zh if zh else self.hint_en).format(subject=subject),
        }


UNDECLARED_NETWORK: Final = "undeclared_network"
UNAUTHORIZED_DHCP: Final = "unauthorized_dhcp_server"
UNDECLARED_TUNNEL: Final = "undeclared_tunnel_endpoint"
NAT_BRIDGE: Final = "extranet_bridge"
STANDALONE_DC: Final = "standalone_data_centre"
OFF_PLATFORM: Final = "off_platform_deployment"
UNREGISTERED_WEBSITE: Final = "unregistered_website"
BEFORE_ACCEPTANCE: Final = "in_use_before_acceptance"
AGENT_OUTSIDE_AGENCY: Final = "agent_outside_agency_prefixes"

RULES: Final[dict[str, Rule]] = {r.id: r for r in (
    Rule(UNDECLARED_NETWORK, "第九条、第三十条第（二）项", "Articles 9 and 30(2)", "warning",
         "未申报的网络（疑似业务专网）：{subject}", "Undeclared network (possible private business network): {subject}",
         "若为电子政务外网网段，请在地址规划中申报 {subject}；若为经批准的专网，请登记豁免并填写批准文号。",
         "If {subject} belongs to the e-gov extranet, declare it in the address plan; if it is an approved private "
         "network, register an exemption with its approval reference.",
         escalate_at_confidence=0.75),
    Rule(UNAUTHORIZED_DHCP, "第九条", "Article 9", "critical",
         "未授权的DHCP服务器：{subject}", "Unauthorized DHCP server: {subject}",
         "核实 {subject} 所属设备；私设DHCP往往意味着私建网络，应关闭或纳入统一管理。",
         "Find the device at {subject}; a DHCP server nobody authorized usually means a network nobody declared."),
    Rule(UNDECLARED_TUNNEL, "第九条、第三十条第（二）项", "Articles 9 and 30(2)", "critical",
         "通往未申报端点的隧道：{subject}", "Tunnel to an undeclared endpoint: {subject}",
         "核实隧道用途；对端 {subject} 不在地址规划或已批准专网内。",
         "Check what the tunnel is for: its endpoint {subject} is in neither the address plan nor an approved network."),
    Rule(NAT_BRIDGE, "第三十条第（二）项", "Article 30(2)", "critical",
         "主机在外网与未申报网络之间转发/NAT：{subject}", "Host forwards or NATs between the extranet and an undeclared network: {subject}",
         "主机 {subject} 同时连接电子政务外网和未申报网段并开启转发，请核实并整改。",
         "{subject} sits on the extranet and on an undeclared network with forwarding or NAT on: check and fix."),
    Rule(STANDALONE_DC, "第三十条第（四）项", "Article 30(4)", "critical",
         "疑似未经批准的独立数据中心：{subject}", "Possible unapproved standalone data centre: {subject}",
         "{subject} 中服务器类主机数量达到阈值，但不是登记的数据中心站点；请核实是否新建、扩建或改建机房。",
         "{subject} holds at least the threshold of server-class hosts but is not a registered data centre site."),
    Rule(OFF_PLATFORM, "第三十条第（三）项", "Article 30(3)", "warning",
         "系统部署在统一平台之外：{subject}", "System deployed outside the platform: {subject}",
         "已登记系统的主机 {subject} 位于非平台站点，应迁移至市统一平台。",
         "The registered system's host {subject} runs outside the platform's sites; it should move onto the platform."),
    Rule(UNREGISTERED_WEBSITE, "第十条至第十二条", "Articles 10–12", "warning",
         "未登记的网站：{subject}", "Unregistered website: {subject}",
         "网站 {subject} 不在登记网站名录中；不得擅自建设专题网站或区级部门网站。",
         "{subject} is not in the registered website list; standalone topic or sub-department sites are not allowed."),
    Rule(BEFORE_ACCEPTANCE, "第十七条", "Article 17", "warning",
         "系统未经验收即投入使用：{subject}", "System in use before acceptance: {subject}",
         "系统 {subject} 已在提供服务，但未登记验收记录。",
         "{subject} already serves traffic but its acceptance is not recorded."),
    Rule(AGENT_OUTSIDE_AGENCY, "第二十五条", "Article 25", "warning",
         "主机不在所属部门申报的地址范围内：{subject}", "Host outside its agency's declared prefixes: {subject}",
         "主机 {subject} 的地址不在其部门申报的网段内，请核实主机归属或补充申报。",
         "{subject}'s addresses are outside its agency's declared prefixes: check whose host it is, or declare them."),
)}  # fmt: skip

SEVERITIES: Final = ("info", "warning", "critical")
