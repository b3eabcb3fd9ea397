"""Kannel's secrets: generated once even by racing processes, never printed, written owner-only,
and any character in a password survives the trip through kannel.conf into a real Kannel."""

import os
import stat
import subprocess
import sys
import urllib.parse
import urllib.request

from kannel_helpers import start_kannel, stop_kannel

from send_jobs import kannel_box
from send_jobs.config import KannelConfig
from warehouse.settings import Settings

SECRETS = ("admin_password", "sendsms_password", "receiver_secret")


def test_a_config_repr_shows_no_secret(tmp_path):
    cfg = KannelConfig.from_env({}, tmp_path / "state")
    shown = repr(cfg) + str(cfg)
    assert all(getattr(cfg, name) not in shown for name in SECRETS)
    assert "sendsms_port" in shown


def test_racing_first_runs_generate_the_secrets_once(tmp_path):
    state = tmp_path / "state"
    go = tmp_path / "go"
    script = (
        "import sys, time, pathlib\n"
        "from send_jobs.config import KannelConfig\n"
        "while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.001)\n"
        "c = KannelConfig.from_env({}, pathlib.Path(sys.argv[1]))\n"
        "print(c.admin_password, c.sendsms_password, c.receiver_secret)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(state), str(go)],
                              stdout=subprocess.PIPE, text=True) for _ in range(8)]  # fmt: skip
    go.touch()
    seen = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(seen) == 1 and all(p.returncode == 0 for p in procs)
    stored = KannelConfig.from_env({}, state)
    assert seen == {f"{stored.admin_password} {stored.sendsms_password} {stored.receiver_secret}"}
    assert stat.S_IMODE(os.stat(state / "secrets.json").st_mode) == 0o600


def test_passwords_with_quotes_and_backslashes_reach_kannel_intact(tmp_path):
    # Kannel reads \\ and \" inside quotes as escapes: a trailing backslash would eat the quote
    odd = {"admin_password": 'adm"in\\\\x#1', "sendsms_password": 'se"nd pass#"word\\'}
    cfg, server = start_kannel(tmp_path / "kannel", port_base=25000, **odd)
    try:
        conf = cfg.state / "kannel.conf"
        assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
        assert "carrier" in kannel_box.status(cfg)  # the admin password works
        query = urllib.parse.urlencode({
            "username": "retentext", "password": odd["sendsms_password"], "from": "12345",
            "to": "+12125550100", "text": "hi"})  # fmt: skip
        with urllib.request.urlopen(f"{cfg.sendsms_url}?{query}", timeout=10) as r:
            assert r.status == 202
    finally:
        stop_kannel(cfg, server)


def test_two_processes_never_get_the_same_port_range():
    """Two test sessions (or a benchmark beside them) each start Kannels: a range one process
    picked and has not bound yet is not handed to the other. The range lies below Linux's
    ephemeral ports (32768 and up), which client connections take at random."""
    ours = kannel_box.free_base_port(29000, 30000)
    script = "from send_jobs import kannel_box; print(kannel_box.free_base_port(29000, 30000))"
    theirs = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()  # fmt: skip
    assert int(theirs) != ours
    assert kannel_box.free_base_port(29000, 30000) == ours  # still ours to reuse


def test_the_gateway_reads_its_variables_from_the_settings_not_the_process(tmp_path, monkeypatch):
    """Settings read once at the entry point carry the gateway's variables; the process's
    environment changing later does not reach the gateway."""
    env = {"RETENTEXT_KANNEL_STATE": str(tmp_path / "k"), "RETENTEXT_KANNEL_BASE_PORT": "15000",
           "RETENTEXT_KANNEL_PASSWORD": "from-settings", "RETENTEXT_SMSC_COUNTRIES": "uk=gb",
           "RETENTEXT_WAREHOUSE": str(tmp_path / "w.duckdb")}  # fmt: skip
    settings = Settings.from_env(env)
    monkeypatch.setenv("RETENTEXT_KANNEL_BASE_PORT", "17000")
    cfg = KannelConfig.from_settings(settings)
    assert (cfg.admin_port, cfg.sendsms_port, cfg.receiver_port) == (15000, 15013, 15080)
    assert cfg.sendsms_password == "from-settings"
    assert cfg.smsc_regions == (("uk", "GB"),)
    assert cfg.state == (tmp_path / "k").resolve()
    # the settings travel as an environment (Dagster's resource) and come back the same
    assert Settings.from_env(settings.as_env()) == settings
