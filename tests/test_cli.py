"""The `egovmon` command: init, config, admin, and `up` as a real process on loopback."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from server.settings import load_settings

runner = CliRunner()
EGOVMON = [sys.executable, "-m", "cli"]


def test_init_writes_a_config_that_loads_and_an_inventory(tmp_path):
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 0, result.output
    settings = load_settings(tmp_path / "egovmon.yaml")
    assert (settings.server.port, settings.tsdb.kind.value, settings.language) == (8080, "none", "zh-CN")
    assert "address_plan:" in (tmp_path / "inventory.yaml").read_text(encoding="utf-8")
    again = runner.invoke(app, ["init", str(tmp_path)])
    assert again.exit_code == 1 and "exists" in again.output


def test_config_schema_and_check(tmp_path):
    schema = json.loads(runner.invoke(app, ["config", "schema"]).output)
    assert {"data_dir", "server", "tsdb", "log"} <= set(schema["properties"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("tsdb:\n  kind: influxdb2\n  url: http://127.0.0.1:1\n  token: changeme\n")
    result = runner.invoke(app, ["config", "check", str(bad)])
    assert result.exit_code == 2
    assert "placeholder" in result.output


def test_admin_commands_change_state_and_audit(tmp_path):
    runner.invoke(app, ["init", str(tmp_path / "site")])
    base = ["admin", "--data-dir", str(tmp_path / "data")]
    imported = runner.invoke(app, [*base, "agency", "import", str(tmp_path / "site" / "inventory.yaml")])
    assert imported.exit_code == 0 and "created 3 agencies" in imported.output
    created = runner.invoke(app, [*base, "--json", "enrollment-token", "create", "--agency", "health", "--note", "web01"])
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)[0]["token"].startswith("egve_")
    user = runner.invoke(app, [*base, "user", "create", "health1", "--role", "agency", "--agency", "health"])
    assert user.exit_code == 0, user.output
    missing = runner.invoke(app, [*base, "user", "create", "x1", "--role", "agency", "--agency", "nope"])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    listed = json.loads(runner.invoke(app, [*base, "--json", "agency", "list"]).output)
    assert [a["code"] for a in listed] == ["egov-office", "health", "public-security"]
    from server.audit.service import list_events
    from server.database import make_engine, make_sessionmaker

    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'egovmon.db'}")
    with make_sessionmaker(engine)() as session:
        events = list_events(session)
    engine.dispose()
    assert {e.action for e in events} == {"agency.create", "enrollment_token.create", "user.create"}
    assert all(e.actor.startswith("cli:") for e in events)


def _wait_ready(process: subprocess.Popen[str], url: str) -> None:
    """Poll /readyz until the server answers 200 (30 s at most), failing early if the process died."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not become ready"
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.1)


def _interrupt(process: subprocess.Popen[str]) -> None:
    """Stop a server as Ctrl-C does; fails the test when it does not stop."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("server did not stop on SIGINT")


def test_up_runs_the_server_and_prints_its_url(tmp_path):
    """`egovmon up` as a real process: prints the URL, serves, writes the 0600 admin token."""
    process = subprocess.Popen(
        [*EGOVMON, "up", "--data-dir", str(tmp_path / "data"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        url = match.group(0)
        _wait_ready(process, url)
        token_file = tmp_path / "data" / "initial-admin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        me = httpx.get(f"{url}/api/v1/users/me", headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
        assert me.json()["role"] == "admin"
    finally:
        _interrupt(process)
    stderr = process.stderr.read()
    assert "initial-admin-token" in stderr  # the log says where the token is
    assert "Application shutdown complete" in stderr  # a clean shutdown, not a crash
    assert process.returncode in (0, 130, -signal.SIGINT), stderr  # uvicorn re-raises SIGINT on exit


def test_first_console_login_as_up_prints_it(tmp_path):
    """The documented first login, end to end: `egovmon up` prints the command that sets the admin's password;
    run as printed (with --password-stdin), it lets admin log in through /ui/login; `/` leads there."""
    process = subprocess.Popen(
        [*EGOVMON, "up", "--data-dir", str(tmp_path / "data"), "--port", "0", "--no-agent"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline()).group(0)
        process.stdout.readline()  # data directory and token file
        hint = process.stdout.readline()
        assert hint.startswith(f"console: {url}/ui "), hint
        printed = shlex.split(re.search(r"`([^`]+)`", hint).group(1))
        assert printed[0] == "egovmon" and printed[-3:] == ["user", "passwd", "admin"], printed
        _wait_ready(process, url)
        assert httpx.get(f"{url}/", follow_redirects=False).headers["location"] == "/ui"
        short = subprocess.run([*EGOVMON, *printed[1:], "--password-stdin"], input="too-short\n", capture_output=True, text=True)
        assert short.returncode == 1 and "at least 12 characters" in short.stderr
        done = subprocess.run([*EGOVMON, *printed[1:], "--password-stdin"], input="first-login-2026\n", capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        with httpx.Client(base_url=url) as browser:
            login = browser.post("/ui/login", data={"username": "admin", "password": "first-login-2026"})
            assert (login.status_code, login.headers["location"]) == (303, "/ui")
            overview = browser.get("/ui")
            assert overview.status_code == 200 and "admin" in overview.text and "/ui/logout" in overview.text
    finally:
        _interrupt(process)


def test_init_prints_the_first_steps_up_to_the_console_login(tmp_path):
    result = runner.invoke(app, ["init", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    config = tmp_path / "site" / "egovmon.yaml"
    assert f"egovmon server --config {config}" in result.output
    assert f"egovmon admin --config {config} user passwd admin" in result.output
    assert "http://127.0.0.1:8080/ui" in result.output


def test_user_passwords_set_from_the_cli_follow_the_policy(tmp_path):
    base = ["admin", "--data-dir", str(tmp_path / "data")]
    short = runner.invoke(app, [*base, "user", "create", "noc1", "--role", "noc", "--password-stdin"], input="elevenchars\n")
    assert short.exit_code == 1 and "密码至少需要 12 个字符" in short.output
    assert json.loads(runner.invoke(app, [*base, "--json", "user", "list"]).output) == []  # nothing stored
    created = runner.invoke(app, [*base, "user", "create", "noc1", "--role", "noc", "--password-stdin"], input="twelve-chars\n")
    assert created.exit_code == 0, created.output
    prompted = runner.invoke(app, [*base, "user", "passwd", "noc1"], input="short\nshort\n")
    assert prompted.exit_code == 1 and "at least 12 characters" in prompted.output
    prompted = runner.invoke(app, [*base, "user", "passwd", "noc1"], input="a-longer-password\na-longer-password\n")
    assert prompted.exit_code == 0 and "console password of user noc1 set" in prompted.output
    missing = runner.invoke(app, [*base, "user", "passwd", "admin", "--password-stdin"], input="first-login-2026\n")
    assert missing.exit_code == 1 and "creates 'admin' on its first start" in missing.output


def test_cli_imports_without_the_server_stack():
    """An agent-only install has no FastAPI or SQLAlchemy: `egovmon --help` must not import them.

    Of the server package only `server.settings` may load (pure pydantic: the CLI reads the server's
    configuration file and prints its schema); any other server module would pull the server stack.
    """
    code = (
        "import sys; import cli.main; "
        "bad = [m for m in ('fastapi', 'sqlalchemy', 'uvicorn', 'influxdb_client') if m in sys.modules]; "
        "bad += sorted(m for m in sys.modules if m.startswith('server.') and m != 'server.settings'); "
        "print(bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=True)
    assert result.stdout.strip() == "[]"


def test_inventory_import_export_and_findings_list(tmp_path):
    data = ["--data-dir", str(tmp_path / "data")]
    imported = runner.invoke(app, ["inventory", "import", "cli/templates/inventory.yaml", *data])
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.output) == {"agencies_created": 3, "sites_created": 3, "address_plan_created": 3, "exemptions_created": 1,
                                             "allotments_created": 2}
    exported = runner.invoke(app, ["inventory", "export", *data])
    assert exported.exit_code == 0 and "10.30.8.0/22" in exported.output and "市政务办〔2026〕12号" in exported.output
    (tmp_path / "again.yaml").write_text(exported.output, encoding="utf-8")
    again = runner.invoke(app, ["inventory", "import", str(tmp_path / "again.yaml"), *data])
    assert json.loads(again.output) == {"sites_updated": 3, "address_plan_updated": 3, "exemptions_updated": 1, "allotments_updated": 2}
    (tmp_path / "plan.csv").write_text("prefix,agency,purpose\n10.99.0.0/16,health,新院区\nnot-a-prefix,health,x\n", encoding="utf-8")
    bad = runner.invoke(app, ["inventory", "import", str(tmp_path / "plan.csv"), "--section", "address_plan", *data])
    assert bad.exit_code == 2 and "address_plan[1].prefix" in bad.output
    listed = runner.invoke(app, ["findings", "list", "--json", *data])
    assert listed.exit_code == 0 and json.loads(listed.output) == []


def test_rules_check_accepts_the_default_pack_and_names_each_problem(tmp_path):
    ok = runner.invoke(app, ["rules", "check", "alerting/default_rules.yaml"])
    assert ok.exit_code == 0 and "SUCCESS: 9 rules found" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: [{name: g, rules: [{alert: A, measurement: m, field: f, threshold: 5, clear: 9}, {alert: B, kind: absence}]}]\n")
    failed = runner.invoke(app, ["rules", "check", str(bad)])
    assert failed.exit_code == 1
    assert "clear 9.0 is on the firing side of threshold 5.0" in failed.output and "absence rule needs measurement" in failed.output


AGENT_ONLY = """
import sys
from cli.main import SERVER_EXTRA_MODULES

class AgentOnlyInstall:
    '''Plays an agent-only install (`pip install egovmon`, no extras): the server and flow extras' modules are absent.'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in SERVER_EXTRA_MODULES:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, AgentOnlyInstall())
for loaded in [m for m in sys.modules if m.split(".")[0] in SERVER_EXTRA_MODULES]:
    del sys.modules[loaded]
sys.argv = ["egovmon", *sys.argv[1:]]
from cli.main import main
main()
"""


@pytest.mark.parametrize(("args", "extra"), [
    (["up", "--data-dir", "{tmp}/data", "--port", "0", "--no-agent"], "server"),
    (["findings", "list", "--data-dir", "{tmp}/data"], "server"),
    (["dashboards", "build", "--out", "{tmp}/grafana"], "server"),
    (["flow", "decode", "tests/fixtures/flows/ipfix.dat"], "flow"),
], ids=["up", "findings-list", "dashboards-build", "flow-decode"])
def test_server_commands_on_an_agent_only_install_name_the_extra_in_one_line(tmp_path, args, extra):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = subprocess.run([sys.executable, "-c", AGENT_ONLY, *argv], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.strip().splitlines()
    command = argv[0] if argv[1].startswith("-") else f"{argv[0]} {argv[1]}"
    assert line.startswith(f"error: `egovmon {command}` needs the [{extra}] extra")
    assert f"needs the [{extra}] extra" in line and f"pip install 'egovmon[{extra}]'" in line and "Traceback" not in result.stderr


def test_agent_config_check_and_schema(tmp_path):
    good = tmp_path / "agent.yaml"
    good.write_text("state_dir: /var/lib/egovmon-agent\ncollectors:\n  netstate: {interval_seconds: 120}\n", encoding="utf-8")
    checked = runner.invoke(app, ["agent", "config", "check", str(good)])
    assert checked.exit_code == 0 and json.loads(checked.output)["collectors"]["netstate"]["interval_seconds"] == 120
    bad = tmp_path / "bad.yaml"
    bad.write_text("collectors:\n  host: {interval_seconds: -1}\nbogus: 1\n", encoding="utf-8")
    refused = runner.invoke(app, ["agent", "config", "check", str(bad)])
    assert refused.exit_code == 2 and "collectors.host.interval_seconds" in refused.output and "bogus" in refused.output
    schema = json.loads(runner.invoke(app, ["agent", "config", "schema"]).output)
    assert schema["title"] == "AgentSettings" and "collectors" in schema["properties"]


def _commands(group, path=()):
    """Every command of a Typer group, with its path."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group
            yield (*path, name), command
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_cli_command_has_a_help_text():
    import typer.main

    root = typer.main.get_command(app)
    commands = list(_commands(root))
    assert len(commands) > 50 and ("agent", "config", "schema") in [path for path, _ in commands]
    missing = [" ".join(path) for path, command in commands if not (command.help or "").strip()]
    assert missing == []
