"""The console's texts: Simplified Chinese by default, English on request (data, not branches)."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "login_locked": "登录失败次数过多，请稍后再试",
        "action_declare": "申请申报此网段", "action_incident": "登记安全事件",
        "confirm_declare": "将向审批人提交地址规划申报申请（本部门、此网段），批准后生效；操作记入审计日志。",
        "confirm_incident": "将以此发现（含证据）登记一起安全事件；操作记入审计日志。", "done_declare": "申报申请已提交，等待审批。",
        "done_incident": "已登记安全事件。", "error_not_declarable": "此发现无法申报（仅限部门的未申报网段）。",
        "timeline": "事件时间线", "add_note": "添加记录", "note_text": "记录内容", "change_status": "变更状态", "new_status": "新状态",
        "save": "保存", "chain_intact": "时间线哈希链完整", "chain_broken": "时间线哈希链已损坏", "report": "事件报告",
        "created_by": "登记人", "created_at": "登记时间", "kind_created": "登记", "kind_note": "记录", "kind_evidence": "证据",
        "kind_status": "状态变更", "kind_alert": "告警", "kind_finding": "发现", "silence_duration": "静默时长",
        "silence_matchers": "匹配条件", "silence_comment": "静默原因", "minutes_30": "30 分钟", "hours_1": "1 小时",
        "hours_2": "2 小时", "hours_4": "4 小时", "hours_8": "8 小时", "hours_24": "24 小时", "days_7": "7 天",
        "tab_open": "待处置", "tab_closed": "已关闭", "all": "全部", "min_confidence": "置信度不低于", "search": "搜索",
        "search_hint": "对象或标题", "apply": "筛选", "clear_filters": "清除筛选", "site": "站点", "by_system": "系统",
        "observation_kind": "观测类型", "confidence": "置信度", "first_seen": "首次发现",
        "status_changed": "状态变更", "triage": "处置", "action_acknowledge": "确认此发现", "action_exempt": "登记豁免",
        "confirm_acknowledge": "确认后，该发现标记为“已确认”，操作记入审计日志。", "confirm": "确定",
        "confirm_exempt": "豁免须填写电子政务主管部门的批准文号；操作记入审计日志。", "approval_ref_example": "如 政务办〔2026〕12号",
        "done_acknowledge": "已确认该发现。", "done_exempt": "已登记豁免。", "error_bad_transition": "该发现的状态已变化，无法执行此操作。",
        "error_approval_ref_required": "登记豁免须填写批准文号。", "history": "处置记录", "time": "时间", "actor": "操作人",
        "action": "操作",
        "title": "电子政务平台运行与安全监测", "login": "登录", "logout": "退出", "username": "用户名", "password": "密码",
        "bad_login": "用户名或密码错误", "overview": "总览", "hosts": "主机", "findings": "合规发现", "alerts": "告警",
        "incidents": "安全事件", "scorecard": "合规记分卡", "agency": "部门", "host": "主机名", "last_seen": "最近上报",
        "reporting": "正常上报", "stale": "未上报", "open_findings": "未关闭发现", "firing_alerts": "触发中告警",
        "rule": "规则", "article": "依据条款", "severity": "级别", "status": "状态", "subject": "对象", "evidence": "证据",
        "source": "来源", "observed": "观测时间", "hint": "处置建议", "acknowledge": "确认", "acknowledged": "已确认",
        "summary": "摘要", "since": "开始时间", "load": "系统负载（近1小时）", "no_history": "历史数据保存在时序数据库中，请在 Grafana 查看",
        "history_unreadable": "无法读取时序数据库",
        "language": "English", "duties_overdue": "逾期职责", "coverage": "监测覆盖率", "backup_rpo": "备份达标率",
        "title_col": "名称", "none": "无", "deliveries": "通知投递", "delivery_pending": "待发送",
        "delivery_sending": "发送中", "delivery_sent": "已送达", "delivery_failed": "失败", "lacking_data": "数据中断",
        "severity_critical": "严重", "severity_warning": "警告",
        "severity_info": "提示", "devices": "网络设备", "device": "设备", "reachable": "可达", "unreachable": "不可达",
        "poll_duration": "轮询耗时", "last_error": "最近错误", "collector": "采集主机", "silence": "静默",
        "silence_minutes": "静默分钟数", "comment": "说明", "silences": "生效中的静默", "matchers": "匹配条件", "until": "截止",
        "duties": "安全职责", "duty": "职责", "system": "系统", "last_done": "上次完成", "due": "到期", "overdue": "逾期", "on_time": "按期",
        "seen_by_agencies": "发现该对象的部门数", "shared_subjects": "多个部门共同观测到的对象",
        "related_hint": "其他部门的主机也观测到同一对象，可能存在未经批准的网络互联：",
        "requests": "地址申报审批", "requests_hint": "超出本部门分配地址段、范围过大或全平台共享的申报，须经电子政务主管部门批准（填写批准文号）后生效。",
        "declaration_kind": "类型", "prefix": "网段", "request_reason": "原因", "requested_by": "申请人", "approval_ref": "批准文号",
        "approve": "批准", "reject": "驳回", "kind_address_plan": "地址规划", "kind_exemptions": "专网豁免",
        "reason_too_wide": "范围过大", "reason_outside_allotment": "超出分配地址段", "reason_shared": "全平台共享",
        "reason_requested": "主动申请", "request_pending": "待审批", "request_approved": "已批准", "request_rejected": "已驳回",
    },
    "en": {
        "login_locked": "Too many failed logins; try again later",
        "action_declare": "Request declaration", "action_incident": "Open incident",
        "confirm_declare": "A request to declare this network for the agency goes to the approvers; it takes effect once "
        "approved. The action is written to the audit log.",
        "confirm_incident": "An incident is opened from this finding with its evidence; the action is written to the audit log.",
        "done_declare": "Declaration requested; waiting for approval.", "done_incident": "Incident opened.",
        "error_not_declarable": "This finding cannot be declared (only an agency's undeclared network can).",
        "timeline": "Timeline", "add_note": "Add note", "note_text": "Note", "change_status": "Change status", "new_status": "New status",
        "save": "Save", "chain_intact": "Timeline hash chain intact", "chain_broken": "Timeline hash chain broken", "report": "Report",
        "created_by": "Opened by", "created_at": "Opened", "kind_created": "opened", "kind_note": "note", "kind_evidence": "evidence",
        "kind_status": "status", "kind_alert": "alert", "kind_finding": "finding", "silence_duration": "Duration",
        "silence_matchers": "Matchers", "silence_comment": "Reason", "minutes_30": "30 minutes", "hours_1": "1 hour",
        "hours_2": "2 hours", "hours_4": "4 hours", "hours_8": "8 hours", "hours_24": "24 hours", "days_7": "7 days",
        "tab_open": "To handle", "tab_closed": "Closed", "all": "all", "min_confidence": "Confidence at least", "search": "Search",
        "search_hint": "subject or title", "apply": "Filter", "clear_filters": "Clear filters", "site": "Site",
        "by_system": "system", "observation_kind": "Observation", "confidence": "Confidence", "first_seen": "First seen",
        "status_changed": "Status changed", "triage": "Triage", "action_acknowledge": "Acknowledge", "action_exempt": "Exempt",
        "confirm_acknowledge": "The finding will be marked acknowledged; the action is written to the audit log.", "confirm": "Confirm",
        "confirm_exempt": "An exemption needs the e-gov office's approval reference; the action is written to the audit log.",
        "approval_ref_example": "e.g. 政务办〔2026〕12号", "done_acknowledge": "Finding acknowledged.", "done_exempt": "Exemption registered.",
        "error_bad_transition": "The finding's status has changed: this action no longer applies.",
        "error_approval_ref_required": "An exemption needs the approval reference.", "history": "History", "time": "Time",
        "actor": "By", "action": "Action",
        "title": "E-Government Platform Operations and Security Monitor", "login": "Log in", "logout": "Log out",
        "username": "User name", "password": "Password", "bad_login": "Wrong user name or password", "overview": "Overview",
        "hosts": "Hosts", "findings": "Findings", "alerts": "Alerts", "incidents": "Incidents", "scorecard": "Scorecard",
        "agency": "Agency", "host": "Host", "last_seen": "Last report", "reporting": "reporting", "stale": "silent",
        "open_findings": "Open findings", "firing_alerts": "Firing alerts", "rule": "Rule", "article": "Article",
        "severity": "Severity", "status": "Status", "subject": "Subject", "evidence": "Evidence", "source": "Source",
        "observed": "Observed", "hint": "What to do", "acknowledge": "Acknowledge", "acknowledged": "acknowledged",
        "summary": "Summary", "since": "Since", "load": "Load (last hour)", "no_history": "History is in the TSDB: see Grafana",
        "history_unreadable": "The TSDB cannot be read",
        "language": "中文", "duties_overdue": "Overdue duties", "coverage": "Monitoring coverage", "backup_rpo": "Backups within RPO",
        "title_col": "Title", "none": "none", "deliveries": "Notifications", "delivery_pending": "pending",
        "delivery_sending": "sending", "delivery_sent": "delivered", "delivery_failed": "failed",
        "lacking_data": "data missing", "severity_critical": "critical",
        "severity_warning": "warning", "severity_info": "info", "devices": "Devices", "device": "Device",
        "reachable": "reachable", "unreachable": "unreachable", "poll_duration": "Poll duration", "last_error": "Last error",
        "collector": "Collector host", "silence": "Silence", "silence_minutes": "Minutes", "comment": "Comment",
        "silences": "Active silences", "matchers": "Matchers", "until": "Until", "duties": "Security duties", "duty": "Duty",
        "system": "System", "last_done": "Last done", "due": "Due", "overdue": "overdue", "on_time": "on time",
        "seen_by_agencies": "Agencies that see this subject", "shared_subjects": "Subjects seen by several agencies",
        "related_hint": "Hosts of other agencies see the same subject: possibly an interconnection nobody approved:",
        "requests": "Declaration requests", "requests_hint": "Declarations outside the agency's allotment, too wide, or "
        "platform-wide take effect only once the e-gov office approves them with an approval reference.",
        "declaration_kind": "Kind", "prefix": "Prefix", "request_reason": "Reason", "requested_by": "Requested by",
        "approval_ref": "Approval reference", "approve": "Approve", "reject": "Reject", "kind_address_plan": "Address plan",
        "kind_exemptions": "Exemption", "reason_too_wide": "too wide", "reason_outside_allotment": "outside the allotment",
        "reason_shared": "platform-wide", "reason_requested": "requested", "request_pending": "pending",
        "request_approved": "approved", "request_rejected": "rejected",
    },
}


# The texts of the charts, the NOC wall, the device and flow pages (console-charts).
MESSAGES["zh"].update({
    "site_undeclared": "未登记站点", "auto_refresh": "每 {n} 秒自动刷新", "by_site": "按站点", "site": "站点",
    "devices_up": "设备在线", "devices_down": "设备离线", "probes_failing": "拨测失败", "findings_by_article": "未关闭发现（按条款）",
    "no_data": "无数据", "more_series": "另有 {n} 条曲线未显示", "chart_cpu": "CPU 使用率（按模式）", "chart_load": "系统负载",
    "chart_memory": "内存", "chart_swap": "交换分区", "mem_total": "总量", "mem_used": "已用", "mem_available": "可用", "mem_cached": "缓存",
    "chart_fs": "文件系统使用率", "chart_inodes": "inode 使用率", "read": "读", "write": "写", "chart_disk": "磁盘读写",
    "in": "入", "out": "出", "chart_net": "网络流量", "chart_net_errors": "网络错误", "per_second": "次/秒",
    "chart_if_traffic": "接口流量", "chart_if_errors": "接口错误与丢弃", "time_range": "时间范围", "range_1h": "1 小时",
    "range_6h": "6 小时", "range_24h": "24 小时", "range_7d": "7 天", "addresses": "地址", "address": "地址", "interface": "接口",
    "routes": "路由", "destination": "目的网段", "gateway": "网关", "listening": "监听服务", "socket": "监听地址", "process": "进程",
    "tunnels": "隧道", "tunnel_type": "类型", "remote": "对端", "backups": "备份", "backup_job": "备份任务", "rpo": "恢复点目标（RPO）",
    "rpo_met": "达标", "rpo_missed": "未达标", "vendor": "厂商", "uptime": "运行时长", "memory": "内存",
    "uptime_format": "{d} 天 {h} 小时 {m} 分", "polled": "最近轮询", "interfaces": "接口", "speed": "速率",
    "errors_in_out": "错误（入/出）", "discards_in_out": "丢弃（入/出）", "if_up": "正常", "if_down": "断开", "if_admin_down": "管理关闭",
    "lldp": "LLDP 邻居", "neighbour": "邻居", "details": "详情", "arp": "ARP 表项", "flows": "流量分析", "exporter": "流量输出设备",
    "flow_total": "最近统计窗口合计", "packets": "包", "flow_count": "流", "per_interface": "按接口", "direction": "方向",
    "bytes": "字节数", "dir_in": "入", "dir_out": "出", "unplanned_traffic": "地址规划外的流量", "unplanned_from": "来自规划外地址",
    "unplanned_to": "发往规划外地址", "top_conversations": "主要会话", "src_prefix": "源网段", "dst_prefix": "目的网段",
    "protocol": "协议", "dst_port": "目的端口", "no_flows": "尚未收到流量数据", "unplanned_addresses": "规划外的内部地址",
    "unit_bytes": "字节", "unit_bytes_s": "字节/秒", "unit_bits_s": "比特/秒", "show_list": "展开列表",
    "backup_age": "距上次成功", "newest_n": "最近 {n} 条", "chart_flows": "流量趋势（按输出设备）",
})
MESSAGES["en"].update({
    "site_undeclared": "Undeclared site", "auto_refresh": "refreshes every {n} s", "by_site": "By site", "site": "Site",
    "devices_up": "Devices up", "devices_down": "Devices down", "probes_failing": "Probes failing",
    "findings_by_article": "Open findings by article", "no_data": "No data", "more_series": "{n} more series not shown",
    "chart_cpu": "CPU by mode", "chart_load": "Load", "chart_memory": "Memory", "chart_swap": "Swap", "mem_total": "total",
    "mem_used": "used", "mem_available": "available", "mem_cached": "cached", "chart_fs": "Filesystem use", "chart_inodes": "Inode use",
    "read": "read", "write": "write", "chart_disk": "Disk I/O", "in": "in", "out": "out", "chart_net": "Network traffic",
    "chart_net_errors": "Network errors", "per_second": "/s", "chart_if_traffic": "Interface traffic",
    "chart_if_errors": "Interface errors and discards", "time_range": "Time range", "range_1h": "1 h", "range_6h": "6 h",
    "range_24h": "24 h", "range_7d": "7 d", "addresses": "Addresses", "address": "Address", "interface": "Interface", "routes": "Routes",
    "destination": "Destination", "gateway": "Gateway", "listening": "Listening services", "socket": "Socket", "process": "Process",
    "tunnels": "Tunnels", "tunnel_type": "Type", "remote": "Remote end", "backups": "Backups", "backup_job": "Backup job",
    "rpo": "Recovery point objective", "rpo_met": "met", "rpo_missed": "missed", "vendor": "Vendor", "uptime": "Uptime",
    "memory": "Memory", "uptime_format": "{d} d {h} h {m} min", "polled": "Last poll", "interfaces": "Interfaces", "speed": "Speed",
    "errors_in_out": "Errors (in/out)", "discards_in_out": "Discards (in/out)", "if_up": "up", "if_down": "down",
    "if_admin_down": "admin down", "lldp": "LLDP neighbours", "neighbour": "Neighbour", "details": "Details", "arp": "ARP entries",
    "flows": "Flows", "exporter": "Exporter", "flow_total": "Newest window total", "packets": "packets", "flow_count": "flows",
    "per_interface": "Per interface", "direction": "Direction", "bytes": "Bytes", "dir_in": "in", "dir_out": "out",
    "unplanned_traffic": "Traffic outside the address plan", "unplanned_from": "from unplanned addresses",
    "unplanned_to": "to unplanned addresses", "top_conversations": "Top conversations", "src_prefix": "Source prefix",
    "dst_prefix": "Destination prefix", "protocol": "Protocol", "dst_port": "Port", "no_flows": "No flow data yet",
    "unplanned_addresses": "Internal addresses outside the plan", "unit_bytes": "B", "unit_bytes_s": "B/s",
    "unit_bits_s": "bit/s", "show_list": "Show the list", "backup_age": "Since last success", "newest_n": "newest {n}", "chart_flows": "Traffic by exporter",
})


# The agent's version on the host list, and the upgrade the server's agent bundle offers.
MESSAGES["zh"].update({"agent_version": "代理版本", "upgrade_to": "可升级至 {version}"})
MESSAGES["en"].update({"agent_version": "Agent version", "upgrade_to": "upgrade to {version}"})

# The probes page (ui3).
MESSAGES["zh"].update({
    "probes": "拨测", "probes_total": "拨测总数", "probe_check": "拨测项", "probe_kind": "类型", "probe_target": "目标",
    "probe_reason": "失败原因", "probe_duration": "耗时", "probe_ok": "正常", "probe_failed": "失败",
    "probe_kind_icmp": "ICMP 连通", "probe_kind_tcp": "TCP 端口", "probe_kind_http": "HTTP 服务", "probe_kind_tls": "TLS 证书",
    "probe_kind_dns": "DNS 解析", "probe_kind_arp": "ARP 扫描", "probe_kind_dhcp": "DHCP 检测", "probe_kind_website": "网站发现",
    "probe_kind_traceroute": "路由追踪", "probe_kind_smtp": "SMTP 邮件服务",
})
MESSAGES["en"].update({
    "probes": "Probes", "probes_total": "Probes", "probe_check": "Check", "probe_kind": "Kind", "probe_target": "Target",
    "probe_reason": "Reason", "probe_duration": "Duration", "probe_ok": "ok", "probe_failed": "failing",
    "probe_kind_icmp": "ICMP", "probe_kind_tcp": "TCP port", "probe_kind_http": "HTTP", "probe_kind_tls": "TLS certificate",
    "probe_kind_dns": "DNS", "probe_kind_arp": "ARP sweep", "probe_kind_dhcp": "DHCP", "probe_kind_website": "Website discovery",
    "probe_kind_traceroute": "Traceroute", "probe_kind_smtp": "SMTP",
})

# Finding actions false positive and reopen, and the page of a refused console request (ui3).
MESSAGES["zh"].update({
    "action_false_positive": "标记为误报", "confirm_false_positive": "确认该发现为误报并关闭？操作记入审计日志。",
    "done_false_positive": "已标记为误报。", "action_reopen": "重新打开", "confirm_reopen": "重新打开该发现，恢复跟踪？操作记入审计日志。",
    "done_reopen": "已重新打开该发现。", "error_page_title": "无法完成请求", "error_page_403": "您的角色无权执行此操作。",
    "error_page_404": "未找到该对象，或它不属于您的部门。", "error_page_409": "该操作与对象的当前状态冲突，请刷新后重试。",
    "error_page_csrf": "表单已过期，请返回页面刷新后重试。", "error_page_other": "请求未被接受。", "error_status": "状态码",
    "back_to_console": "返回控制台", "technical_detail": "技术信息",
})
MESSAGES["en"].update({
    "action_false_positive": "Mark as false positive",
    "confirm_false_positive": "Close this finding as a false positive? The action is written to the audit log.",
    "done_false_positive": "Marked as a false positive.", "action_reopen": "Reopen",
    "confirm_reopen": "Reopen this finding and track it again? The action is written to the audit log.",
    "done_reopen": "Finding reopened.", "error_page_title": "The request could not be completed", "error_page_403": "Your role may not do this.",
    "error_page_404": "Not found, or not your agency's.", "error_page_409": "This conflicts with the object's current state: reload and try again.",
    "error_page_csrf": "The form has expired: go back, reload the page and try again.", "error_page_other": "The request was not accepted.",
    "error_status": "Status", "back_to_console": "Back to the console", "technical_detail": "Technical detail",
})

# CPU modes in the host page's CPU chart (ui3): the kernel's names are not words a NOC operator reads.
MESSAGES["zh"].update({
    "cpu_mode_user": "用户态", "cpu_mode_system": "内核态", "cpu_mode_iowait": "等待 I/O", "cpu_mode_irq": "硬中断",
    "cpu_mode_softirq": "软中断", "cpu_mode_nice": "低优先级", "cpu_mode_steal": "被虚拟化占用", "cpu_mode_guest": "虚拟机",
    "cpu_mode_guest_nice": "虚拟机（低优先级）",
})

# The device page's LLDP, ARP and route tables in labelled columns (ui3).
MESSAGES["zh"].update({
    "local_port": "本端接口", "remote_port": "对端接口", "remote_system": "对端系统描述", "route_proto": "路由来源",
    "route_proto_local": "直连", "route_proto_netmgmt": "静态", "route_proto_other": "其他", "route_proto_ospf": "OSPF",
    "route_proto_bgp": "BGP", "route_proto_rip": "RIP", "route_proto_icmp": "ICMP 重定向",
})
MESSAGES["en"].update({
    "local_port": "Local port", "remote_port": "Remote port", "remote_system": "Remote system", "route_proto": "Learned from",
    "route_proto_local": "connected", "route_proto_netmgmt": "static",
})
