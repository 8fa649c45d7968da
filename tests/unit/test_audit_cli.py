"""`paude blocked` and `paude log`: what the audit log shows, and that what the agent chose
(its URLs) reaches the terminal escaped."""

from __future__ import annotations

import json

import pytest

from paude import inspection
from paude.cli import main
from paude.proxylog import parse

AUDIT = "\n".join([
    '{"time":1764252000.100,"client":"10.89.3.7","method":"CONNECT","host":"github.com",'
    '"port":"443","path":"-","status":"200","result":"NONE_NONE","tls":"bump",'
    '"decision":"allow","rule":"inspect","error":"-","detail":"-"}',
    '{"time":1764252000.200,"client":"10.89.3.7","method":"POST","host":"github.com",'
    '"port":"443","path":"/o/p.git/git-receive-pack","status":"403","result":"TCP_DENIED",'
    '"tls":"bump","decision":"deny","rule":"github","error":"-","detail":"-"}',
    # A tunnelled host: the agent's bytes after the CONNECT are never seen.
    '{"time":1764252000.300,"client":"10.89.3.7","method":"CONNECT",'
    '"host":"plain.example","port":"443","path":"-","status":"200","result":"TCP_TUNNEL",'
    '"tls":"splice","decision":"allow","rule":"allowed_domains","error":"-","detail":"-"}',
])


@pytest.fixture()
def audit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspection, "audit", lambda name, **_kw: parse(AUDIT))


def test_blocked_shows_method_host_path_and_rule(audit: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blocked", "demo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("deny  POST    https://github.com/o/p.git/git-receive-pack  "
                           "(403 TCP_DENIED inspected) [github]")
    assert len(out) == 2 and out[1].startswith("1 blocked.")


def test_log_shows_allowed_traffic_too(audit: None,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "demo", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["decision"], r["method"], r["host"], r["rule"], r["inspected"])
            for r in records] == [
        ("allow", "CONNECT", "github.com", "inspect", True),
        ("deny", "POST", "github.com", "github", True),
        ("allow", "CONNECT", "plain.example", "allowed_domains", False)]
    assert main(["log", "demo", "--last", "1"]) == 0
    assert "plain.example:443" in capsys.readouterr().out


def test_what_the_agent_chose_is_escaped(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # squid URL-encodes what it logs; a log line from elsewhere (the gateway's) may not.
    line = "1764252001.000 10.89.3.7 POST http://gw:8080/\x1b]52;c;aGk=\x07 403 GATEWAY_DENIED"
    monkeypatch.setattr(inspection, "audit", lambda name, **_kw: parse(line))
    assert main(["blocked", "demo"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "?]52;c;aGk=?" in out
