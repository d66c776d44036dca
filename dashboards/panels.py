"""Every dashboard, panel, variable and annotation as data, declared once (`dashboards.model`), in Chinese and English.

The fields are those the collectors write (collectors/host.py, collectors/backup.py,
collectors/snmp/reading.py, collectors/flow/aggregate.py, probes/result.py,
server/history/state.py) with the `agency`, `site` and `host` tags the server adds at
ingest. `dashboards.influxql` and `dashboards.promql` turn each declaration into the
query of their flavour. A new dashboard is one entry in `DASHBOARDS`; the tests run
its queries against real InfluxDB and VictoriaMetrics with no other change.
"""

from __future__ import annotations

from dashboards.model import (
    AnnotationSpec,
    Arith,
    DashboardSpec,
    Field,
    Match,
    Nested,
    PanelSpec,
    Target,
    VariableSpec,
)

HOST_SCOPE = ("agency", "site", "host")
DEVICE_SCOPE = ("agency", "device")


def one(expr: Field | Arith | Nested) -> tuple[Target, ...]:
    return (Target(expr),)


ANNOTATIONS: tuple[AnnotationSpec, ...] = (
    AnnotationSpec("告警", "Alerts", "egovmon_alert_events", "text", ("alertname", "status"), "alertname", "red"),
    AnnotationSpec("合规发现", "Findings", "egovmon_finding_events", "text", ("article", "status"), "article", "orange"),
)

VARIABLES: dict[str, VariableSpec] = {v.name: v for v in (
    VariableSpec("agency", "部门", "Agency", "host_system", "uptime_seconds", "agency"),
    VariableSpec("site", "站点", "Site", "host_system", "uptime_seconds", "site", ("agency",)),
    VariableSpec("host", "主机", "Host", "host_system", "uptime_seconds", "host", ("agency", "site")),
    VariableSpec("device", "设备", "Device", "snmp_interface", "oper_up", "device", ("agency",)),
)}  # fmt: skip

HOST_PANELS = (
    PanelSpec("CPU 使用（核·秒/秒）", "CPU busy (core seconds per second)",
              one(Field("host_cpu", "seconds_total", "rate", "sum", HOST_SCOPE, (Match("mode", "idle", negate=True),))), ("host",)),
    PanelSpec("可用内存比例", "Memory available",
              one(Arith(Field("host_memory", "available_bytes", "mean", "avg", HOST_SCOPE), "/",
                        Field("host_memory", "total_bytes", "mean", "avg", HOST_SCOPE))), ("host",), unit="percentunit"),
    PanelSpec("系统负载", "Load", one(Field("host_load", "load1", "mean", "avg", HOST_SCOPE)), ("host",)),
    PanelSpec("文件系统剩余", "Filesystem available",
              one(Arith(Field("host_filesystem", "avail_bytes", scope=HOST_SCOPE), "/", Field("host_filesystem", "size_bytes", scope=HOST_SCOPE))),
              ("host", "mountpoint"), unit="percentunit"),
    PanelSpec("网络接收", "Network received", one(Field("host_network", "receive_bytes_total", "rate", "max", HOST_SCOPE)),
              ("host", "interface"), unit="Bps"),
)  # fmt: skip

_OPEN = Arith(Field("egovmon_findings", "open"), "+", Field("egovmon_findings", "acknowledged"))

DASHBOARDS: tuple[DashboardSpec, ...] = (
    DashboardSpec("egovmon-overview", "platform", "平台总览", "Platform overview", (
        PanelSpec("触发中告警", "Firing alerts", one(Nested("sum", Field("egovmon_alerts", "firing"), ("agency", "severity"))), (), kind="stat"),
        PanelSpec("未关闭合规发现", "Open findings", one(Nested("sum", _OPEN, ("agency", "rule_id", "severity"))), (), kind="stat"),
        PanelSpec("各站点上报主机（统一平台、灾备中心、交换中心）", "Hosts reporting per site (platform, backup, exchange centres)",
                  one(Nested("count", Field("host_system", "uptime_seconds", scope=("agency", "site")), ("site", "host"))), ("site",),
                  kind="table"),
        PanelSpec("上报主机数", "Hosts reporting", one(Nested("count", Field("host_system", "uptime_seconds", scope=("agency", "site")),
                                                             ("host",))), (), kind="stat"),
        PanelSpec("各部门上报主机", "Hosts reporting per agency", one(Field("host_system", "uptime_seconds", scope=("agency", "site"))),
                  ("agency", "host"), kind="table"),
        PanelSpec("备份超出RPO的任务", "Backup jobs past their RPO", one(Field("backup", "rpo_ok", across="min")), ("agency", "host", "job"),
                  kind="table"),
        PanelSpec("失败的探测", "Failing probes", one(Field("probe", "success", across="min")), ("check", "target"), kind="table"),
    ), variables=("agency", "site")),
    DashboardSpec("egovmon-hosts", "platform", "主机", "Hosts", HOST_PANELS, variables=("agency", "site", "host")),
    DashboardSpec("egovmon-network", "network", "网络设备与接口", "Network devices and interfaces", (
        # 64-bit ifXTable counters; a reboot is a reset, not a negative rate
        PanelSpec("接口入流量", "Interface traffic in", one(Arith(Field("snmp_interface", "hc_in_octets_total", "rate", scope=DEVICE_SCOPE), "*", 8)),
                  ("device", "if_name"), unit="bps"),
        PanelSpec("接口出流量", "Interface traffic out", one(Arith(Field("snmp_interface", "hc_out_octets_total", "rate", scope=DEVICE_SCOPE), "*", 8)),
                  ("device", "if_name"), unit="bps"),
        PanelSpec("设备CPU与内存", "Device CPU and memory", (
            Target(Field("snmp_health", "cpu_percent", scope=DEVICE_SCOPE), "CPU", "CPU"),
            Target(Field("snmp_health", "memory_percent", scope=DEVICE_SCOPE), "内存", "Memory"),
        ), ("device", "name"), kind="table", unit="percent"),
        PanelSpec("接口状态", "Interface status", one(Field("snmp_interface", "oper_up", across="min", scope=DEVICE_SCOPE)), ("device", "if_name"),
                  kind="table"),
        PanelSpec("设备可达", "Device reachable", one(Field("snmp_device", "up", across="min", scope=DEVICE_SCOPE)), ("device",), kind="table"),
    ), variables=("agency", "device")),
    DashboardSpec("egovmon-flows", "network", "流量", "Flows", (
        PanelSpec("各采集器流量", "Traffic per exporter", one(Field("flow", "bytes", "sum", "sum")), ("exporter",), unit="decbytes"),
        PanelSpec("未申报地址空间流量", "Traffic from and to undeclared space", one(Field("flow_unplanned", "bytes", "sum", "sum")), ("direction",),
                  unit="decbytes"),
        PanelSpec("主要会话", "Top conversations", one(Field("flow_top", "bytes", "sum", "sum")), ("src_prefix", "dst_prefix", "protocol", "dst_port"),
                  kind="table"),
    ), variables=("agency",)),
    DashboardSpec("egovmon-backup", "platform", "备份与容灾", "Backup and disaster recovery", (
        PanelSpec("距上次成功备份（秒）", "Since the last good backup (s)", one(Field("backup", "age_seconds")), ("agency", "host", "job"), unit="s"),
        PanelSpec("RPO 达标", "Within RPO", one(Field("backup", "rpo_ok", across="min")), ("agency", "job"), kind="table"),
    ), variables=("agency",)),
    DashboardSpec("egovmon-probes", "services", "探测与网站", "Probes and websites", (
        PanelSpec("探测成功", "Probe success", one(Field("probe", "success", across="min")), ("check",)),
        PanelSpec("探测耗时", "Probe duration", one(Field("probe", "duration_seconds", "mean", "avg")), ("check",), unit="s"),
    ), variables=("agency",)),
    DashboardSpec("egovmon-security", "compliance", "安全与合规", "Security and compliance", (
        PanelSpec("按条款的未关闭发现", "Open findings by article", one(Nested("sum", _OPEN, ("agency", "article", "rule_id", "severity"))),
                  ("article", "agency"), kind="table"),
        PanelSpec("发现趋势", "Findings over time", one(Field("egovmon_findings", "open", "sum", "sum")), ("article",)),
        PanelSpec("按级别的告警", "Firing alerts by severity", one(Field("egovmon_alerts", "firing")), ("agency", "severity"), kind="table"),
        PanelSpec("合规记分卡", "Compliance scorecard", (
            Target(Field("egovmon_scorecard", "duties_overdue"), "逾期职责", "Duties overdue"),
            Target(Field("egovmon_scorecard", "monitoring_coverage_ratio"), "监测覆盖率", "Monitoring coverage"),
            Target(Field("egovmon_scorecard", "backup_rpo_ratio"), "备份达标率", "Backups within RPO"),
            Target(Field("egovmon_scorecard", "open_findings"), "未关闭发现", "Open findings"),
        ), ("agency",), kind="table"),
    ), variables=("agency",)),
    # The agency view filters by site and host: it must define both variables (it once used `$site` undefined, and a
    # real InfluxDB then listed no host at all).
    DashboardSpec("egovmon-agency", "agencies", "部门视图", "Agency view", HOST_PANELS[:3] + (
        PanelSpec("本部门备份", "This agency's backups", one(Field("backup", "rpo_ok", across="min", scope=HOST_SCOPE)), ("host", "job"),
                  kind="table"),
    ), variables=("agency", "site", "host")),
)  # fmt: skip

FOLDERS = {"platform": ("统一平台", "Platform"), "network": ("网络", "Network"), "services": ("服务", "Services"),
           "agencies": ("部门", "Agencies"), "compliance": ("安全与合规", "Security and compliance")}  # fmt: skip
