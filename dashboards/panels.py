"""Every dashboard and panel as data: titles in Chinese and English, the InfluxQL each panel runs.

Queries use the measurements and fields the collectors write (collectors/host.py,
collectors/backup.py, collectors/snmp/reading.py, collectors/flow/aggregate.py,
probes/result.py) and the `agency` and `host` tags the server adds at ingest.
`$agency`, `$host` and `$device` are Grafana template variables (regex-matched, so
"All" works); `$timeFilter` and `$__interval` are Grafana's own.
"""

from __future__ import annotations

from dataclasses import dataclass

SCOPE = "\"agency\" =~ /^$agency$/ AND \"site\" =~ /^$site$/ AND \"host\" =~ /^$host$/"


@dataclass(frozen=True, slots=True)
class PanelSpec:
    title_zh: str
    title_en: str
    query: str
    legend: tuple[str, ...]  # the tags the legend shows (GROUP BY)
    kind: str = "timeseries"  # timeseries, stat, table
    unit: str = ""


@dataclass(frozen=True, slots=True)
class VariableSpec:
    name: str
    label_zh: str
    label_en: str
    query: str


@dataclass(frozen=True, slots=True)
class AnnotationSpec:
    name_zh: str
    name_en: str
    query: str
    tags_column: str
    color: str


ANNOTATIONS: tuple[AnnotationSpec, ...] = (
    AnnotationSpec("告警", "Alerts", 'SELECT "text", "alertname", "status" FROM "egovmon_alert_events" WHERE $timeFilter '
                   'AND "agency" =~ /^$agency$/', "alertname,status", "red"),
    AnnotationSpec("合规发现", "Findings", 'SELECT "text", "article", "status" FROM "egovmon_finding_events" WHERE $timeFilter '
                   'AND "agency" =~ /^$agency$/', "article,status", "orange"),
)


@dataclass(frozen=True, slots=True)
class DashboardSpec:
    uid: str
    folder: str
    title_zh: str
    title_en: str
    panels: tuple[PanelSpec, ...]
    variables: tuple[str, ...] = ("agency", "host")
    annotations: bool = True  # alert and finding events as annotations


VARIABLES: dict[str, VariableSpec] = {v.name: v for v in (
    VariableSpec("agency", "部门", "Agency", 'SHOW TAG VALUES FROM "host_system" WITH KEY = "agency"'),
    VariableSpec("site", "站点", "Site", 'SHOW TAG VALUES FROM "host_system" WITH KEY = "site" WHERE "agency" =~ /^$agency$/'),
    VariableSpec("host", "主机", "Host", 'SHOW TAG VALUES FROM "host_system" WITH KEY = "host" WHERE "agency" =~ /^$agency$/ '
                 'AND "site" =~ /^$site$/'),
    VariableSpec("device", "设备", "Device", 'SHOW TAG VALUES FROM "snmp_interface" WITH KEY = "device" WHERE "agency" =~ /^$agency$/'),
)}  # fmt: skip

HOST_PANELS = (
    PanelSpec("CPU 使用（核·秒/秒）", "CPU busy (core seconds per second)",
              f'SELECT non_negative_derivative(sum("seconds_total"), 1s) FROM "host_cpu" WHERE $timeFilter AND {SCOPE} AND "mode" != \'idle\' '
              'GROUP BY time($__interval), "host" fill(none)', ("host",)),
    PanelSpec("可用内存比例", "Memory available", f'SELECT mean("available_bytes") / mean("total_bytes") FROM "host_memory" '
              f'WHERE $timeFilter AND {SCOPE} GROUP BY time($__interval), "host" fill(none)', ("host",), unit="percentunit"),
    PanelSpec("系统负载", "Load", f'SELECT mean("load1") FROM "host_load" WHERE $timeFilter AND {SCOPE} '
              'GROUP BY time($__interval), "host" fill(none)', ("host",)),
    PanelSpec("文件系统剩余", "Filesystem available", f'SELECT last("avail_bytes") / last("size_bytes") FROM "host_filesystem" '
              f'WHERE $timeFilter AND {SCOPE} GROUP BY time($__interval), "host", "mountpoint" fill(none)', ("host", "mountpoint"),
              unit="percentunit"),
    PanelSpec("网络接收", "Network received", f'SELECT non_negative_derivative(max("receive_bytes_total"), 1s) FROM "host_network" '
              f'WHERE $timeFilter AND {SCOPE} GROUP BY time($__interval), "host", "interface" fill(none)', ("host", "interface"), unit="Bps"),
)  # fmt: skip

DASHBOARDS: tuple[DashboardSpec, ...] = (
    DashboardSpec("egovmon-overview", "platform", "平台总览", "Platform overview", (
        PanelSpec("触发中告警", "Firing alerts", 'SELECT sum("firing") FROM (SELECT last("firing") AS "firing" FROM "egovmon_alerts" '
                  'WHERE $timeFilter AND "agency" =~ /^$agency$/ GROUP BY "agency", "severity")', (), kind="stat"),
        PanelSpec("未关闭合规发现", "Open findings", 'SELECT sum("open") FROM (SELECT last("open") + last("acknowledged") AS "open" '
                  'FROM "egovmon_findings" WHERE $timeFilter AND "agency" =~ /^$agency$/ GROUP BY "agency", "rule_id", "severity")',
                  (), kind="stat"),
        PanelSpec("各站点上报主机（统一平台、灾备中心、交换中心）", "Hosts reporting per site (platform, backup, exchange centres)",
                  'SELECT count("uptime") FROM (SELECT last("uptime_seconds") AS "uptime" FROM "host_system" WHERE $timeFilter '
                  'AND "agency" =~ /^$agency$/ AND "site" =~ /^$site$/ GROUP BY "site", "host") GROUP BY "site"', ("site",), kind="table"),
        PanelSpec("上报主机数", "Hosts reporting", 'SELECT count(distinct("host")) FROM (SELECT last("uptime_seconds") FROM "host_system" '
                  'WHERE $timeFilter AND "agency" =~ /^$agency$/ GROUP BY "host")', (), kind="stat"),
        PanelSpec("各部门上报主机", "Hosts reporting per agency", 'SELECT last("uptime_seconds") FROM "host_system" WHERE $timeFilter '
                  'AND "agency" =~ /^$agency$/ GROUP BY "agency", "host"', ("agency", "host"), kind="table"),
        PanelSpec("备份超出RPO的任务", "Backup jobs past their RPO", 'SELECT last("rpo_ok") FROM "backup" WHERE $timeFilter '
                  'AND "agency" =~ /^$agency$/ GROUP BY "agency", "host", "job"', ("agency", "host", "job"), kind="table"),
        PanelSpec("失败的探测", "Failing probes", 'SELECT last("success") FROM "probe" WHERE $timeFilter AND "agency" =~ /^$agency$/ '
                  'GROUP BY "check", "target"', ("check", "target"), kind="table"),
    ), variables=("agency", "site")),
    DashboardSpec("egovmon-hosts", "platform", "主机", "Hosts", HOST_PANELS, variables=("agency", "site", "host")),
    DashboardSpec("egovmon-network", "network", "网络设备与接口", "Network devices and interfaces", (
        PanelSpec("接口入流量", "Interface traffic in", 'SELECT non_negative_derivative(max("hc_in_octets_total"), 1s) * 8 FROM "snmp_interface" '
                  'WHERE $timeFilter AND "device" =~ /^$device$/ GROUP BY time($__interval), "device", "if_name" fill(none)',
                  ("device", "if_name"), unit="bps"),  # 64-bit ifXTable counters; a reboot is a reset, not a negative rate
        PanelSpec("接口出流量", "Interface traffic out", 'SELECT non_negative_derivative(max("hc_out_octets_total"), 1s) * 8 FROM "snmp_interface" '
                  'WHERE $timeFilter AND "device" =~ /^$device$/ GROUP BY time($__interval), "device", "if_name" fill(none)',
                  ("device", "if_name"), unit="bps"),
        PanelSpec("设备CPU与内存", "Device CPU and memory", 'SELECT last("cpu_percent") AS "cpu", last("memory_percent") AS "memory" '
                  'FROM "snmp_health" WHERE $timeFilter AND "device" =~ /^$device$/ GROUP BY "device", "name"', ("device", "name"),
                  kind="table", unit="percent"),
        PanelSpec("接口状态", "Interface status", 'SELECT last("oper_up") FROM "snmp_interface" WHERE $timeFilter AND "device" =~ /^$device$/ '
                  'GROUP BY "device", "if_name"', ("device", "if_name"), kind="table"),
        PanelSpec("设备可达", "Device reachable", 'SELECT last("up") FROM "snmp_device" WHERE $timeFilter AND "agency" =~ /^$agency$/ '
                  'GROUP BY "device"', ("device",), kind="table"),
    ), variables=("agency", "device")),
    DashboardSpec("egovmon-flows", "network", "流量", "Flows", (
        PanelSpec("各采集器流量", "Traffic per exporter", 'SELECT sum("bytes") FROM "flow" WHERE $timeFilter AND "agency" =~ /^$agency$/ '
                  'GROUP BY time($__interval), "exporter" fill(none)', ("exporter",), unit="decbytes"),
        PanelSpec("未申报地址空间流量", "Traffic from and to undeclared space", 'SELECT sum("bytes") FROM "flow_unplanned" WHERE $timeFilter '
                  'AND "agency" =~ /^$agency$/ GROUP BY time($__interval), "direction" fill(none)', ("direction",), unit="decbytes"),
        PanelSpec("主要会话", "Top conversations", 'SELECT sum("bytes") FROM "flow_top" WHERE $timeFilter AND "agency" =~ /^$agency$/ '
                  'GROUP BY "src_prefix", "dst_prefix", "protocol", "dst_port"', ("src_prefix", "dst_prefix", "protocol", "dst_port"),
                  kind="table"),
    ), variables=("agency",)),
    DashboardSpec("egovmon-backup", "platform", "备份与容灾", "Backup and disaster recovery", (
        PanelSpec("距上次成功备份（秒）", "Since the last good backup (s)", 'SELECT last("age_seconds") FROM "backup" WHERE $timeFilter '
                  'AND "agency" =~ /^$agency$/ GROUP BY time($__interval), "agency", "host", "job" fill(none)', ("agency", "host", "job"), unit="s"),
        PanelSpec("RPO 达标", "Within RPO", 'SELECT last("rpo_ok") FROM "backup" WHERE $timeFilter AND "agency" =~ /^$agency$/ '
                  'GROUP BY "agency", "job"', ("agency", "job"), kind="table"),
    ), variables=("agency",)),
    DashboardSpec("egovmon-probes", "services", "探测与网站", "Probes and websites", (
        PanelSpec("探测成功", "Probe success", 'SELECT last("success") FROM "probe" WHERE $timeFilter AND "agency" =~ /^$agency$/ '
                  'GROUP BY time($__interval), "check" fill(none)', ("check",)),
        PanelSpec("探测耗时", "Probe duration", 'SELECT mean("duration_seconds") FROM "probe" WHERE $timeFilter AND "agency" =~ /^$agency$/ '
                  'GROUP BY time($__interval), "check" fill(none)', ("check",), unit="s"),
    ), variables=("agency",)),
    DashboardSpec("egovmon-security", "compliance", "安全与合规", "Security and compliance", (
        PanelSpec("按条款的未关闭发现", "Open findings by article", 'SELECT last("open") + last("acknowledged") FROM "egovmon_findings" '
                  'WHERE $timeFilter AND "agency" =~ /^$agency$/ GROUP BY "article", "agency"', ("article", "agency"), kind="table"),
        PanelSpec("发现趋势", "Findings over time", 'SELECT sum("open") FROM "egovmon_findings" WHERE $timeFilter AND "agency" =~ /^$agency$/ '
                  'GROUP BY time($__interval), "article" fill(none)', ("article",)),
        PanelSpec("按级别的告警", "Firing alerts by severity", 'SELECT last("firing") FROM "egovmon_alerts" WHERE $timeFilter '
                  'AND "agency" =~ /^$agency$/ GROUP BY "agency", "severity"', ("agency", "severity"), kind="table"),
        PanelSpec("合规记分卡", "Compliance scorecard", 'SELECT last("duties_overdue") AS "逾期职责", last("monitoring_coverage_ratio") '
                  'AS "监测覆盖率", last("backup_rpo_ratio") AS "备份达标率", last("open_findings") AS "未关闭发现" FROM "egovmon_scorecard" '
                  'WHERE $timeFilter AND "agency" =~ /^$agency$/ GROUP BY "agency"', ("agency",), kind="table"),
    ), variables=("agency",)),
    DashboardSpec("egovmon-agency", "agencies", "部门视图", "Agency view", HOST_PANELS[:3] + (
        PanelSpec("本部门备份", "This agency's backups", 'SELECT last("rpo_ok") FROM "backup" WHERE $timeFilter AND "agency" =~ /^$agency$/ '
                  'GROUP BY "host", "job"', ("host", "job"), kind="table"),
    )),
)  # fmt: skip

FOLDERS = {"platform": ("统一平台", "Platform"), "network": ("网络", "Network"), "services": ("服务", "Services"),
           "agencies": ("部门", "Agencies"), "compliance": ("安全与合规", "Security and compliance")}  # fmt: skip
