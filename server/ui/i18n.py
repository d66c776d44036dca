"""The console's texts: Simplified Chinese by default, English on request (data, not branches)."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "title": "电子政务平台运行与安全监测", "login": "登录", "logout": "退出", "username": "用户名", "password": "密码",
        "bad_login": "用户名或密码错误", "overview": "总览", "hosts": "主机", "findings": "合规发现", "alerts": "告警",
        "incidents": "安全事件", "scorecard": "合规记分卡", "agency": "部门", "host": "主机名", "last_seen": "最近上报",
        "reporting": "正常上报", "stale": "未上报", "open_findings": "未关闭发现", "firing_alerts": "触发中告警",
        "rule": "规则", "article": "依据条款", "severity": "级别", "status": "状态", "subject": "对象", "evidence": "证据",
        "source": "来源", "observed": "观测时间", "hint": "处置建议", "acknowledge": "确认", "acknowledged": "已确认",
        "summary": "摘要", "since": "开始时间", "load": "系统负载（近1小时）", "no_history": "历史数据保存在时序数据库中，请在 Grafana 查看",
        "language": "English", "duties_overdue": "逾期职责", "coverage": "监测覆盖率", "backup_rpo": "备份达标率",
        "title_col": "名称", "none": "无", "lacking_data": "数据中断", "severity_critical": "严重", "severity_warning": "警告",
        "severity_info": "提示", "devices": "网络设备", "device": "设备", "reachable": "可达", "unreachable": "不可达",
        "poll_duration": "轮询耗时（秒）", "last_error": "最近错误", "collector": "采集主机", "silence": "静默",
        "silence_minutes": "静默分钟数", "comment": "说明", "silences": "生效中的静默", "matchers": "匹配条件", "until": "截止",
        "duties": "安全职责", "duty": "职责", "system": "系统", "last_done": "上次完成", "due": "到期", "overdue": "逾期", "on_time": "按期",
        "seen_by_agencies": "发现该对象的部门数", "related_hint": "其他部门的主机也观测到同一对象，可能存在未经批准的网络互联：",
    },
    "en": {
        "title": "E-Government Platform Operations and Security Monitor", "login": "Log in", "logout": "Log out",
        "username": "User name", "password": "Password", "bad_login": "Wrong user name or password", "overview": "Overview",
        "hosts": "Hosts", "findings": "Findings", "alerts": "Alerts", "incidents": "Incidents", "scorecard": "Scorecard",
        "agency": "Agency", "host": "Host", "last_seen": "Last report", "reporting": "reporting", "stale": "silent",
        "open_findings": "Open findings", "firing_alerts": "Firing alerts", "rule": "Rule", "article": "Article",
        "severity": "Severity", "status": "Status", "subject": "Subject", "evidence": "Evidence", "source": "Source",
        "observed": "Observed", "hint": "What to do", "acknowledge": "Acknowledge", "acknowledged": "acknowledged",
        "summary": "Summary", "since": "Since", "load": "Load (last hour)", "no_history": "History is in the TSDB: see Grafana",
        "language": "中文", "duties_overdue": "Overdue duties", "coverage": "Monitoring coverage", "backup_rpo": "Backups within RPO",
        "title_col": "Title", "none": "none", "lacking_data": "data missing", "severity_critical": "critical",
        "severity_warning": "warning", "severity_info": "info", "devices": "Devices", "device": "Device",
        "reachable": "reachable", "unreachable": "unreachable", "poll_duration": "Poll duration (s)", "last_error": "Last error",
        "collector": "Collector host", "silence": "Silence", "silence_minutes": "Minutes", "comment": "Comment",
        "silences": "Active silences", "matchers": "Matchers", "until": "Until", "duties": "Security duties", "duty": "Duty",
        "system": "System", "last_done": "Last done", "due": "Due", "overdue": "overdue", "on_time": "on time",
        "seen_by_agencies": "Agencies that see this subject",
        "related_hint": "Hosts of other agencies see the same subject: possibly an interconnection nobody approved:",
    },
}
