"""Parsing the proxy's access log for `paude blocked`."""

from __future__ import annotations

from paude.proxylog import blocked, parse

LOG = """\
1764252000.123 10.89.3.7 CONNECT pypi.org:443 200 TCP_TUNNEL
1764252001.500 10.89.3.7 CONNECT 203.0.113.5:443 403 TCP_DENIED
1764252002.000 10.89.3.7 GET http://evil.example.net/x 403 TCP_DENIED
garbage line that is not ours
1764252003.000 10.89.3.7 GET http://pypi.org/simple/ 404 TCP_MISS
"""


def test_parse_reads_every_well_formed_line() -> None:
    records = parse(LOG)
    assert [r.url for r in records] == ["pypi.org:443", "203.0.113.5:443",
                                        "http://evil.example.net/x", "http://pypi.org/simple/"]
    assert records[0].status == 200 and records[0].result == "TCP_TUNNEL"
    assert records[1].time.timestamp() == 1764252001.5


def test_blocked_keeps_only_refusals_in_order() -> None:
    assert [(r.method, r.url) for r in blocked(LOG)] == [
        ("CONNECT", "203.0.113.5:443"), ("GET", "http://evil.example.net/x")]


def test_json_form_is_stable() -> None:
    record = blocked(LOG)[0]
    assert record.to_json() == {"time": "2025-11-27T14:00:01.500000+00:00",
                                "client": "10.89.3.7", "method": "CONNECT", "host": "",
                                "path": "", "url": "203.0.113.5:443", "decision": "deny",
                                "rule": "", "status": 403, "result": "TCP_DENIED",
                                "inspected": False, "error": ""}


# The audit format (templates/squid.conf.j2, logformat paude_json), as squid writes it.
AUDIT = "\n".join([
    '{"time":1764252000.100,"client":"10.89.3.7","method":"CONNECT","host":"github.com",'
    '"port":"443","path":"-","status":"200","result":"NONE_NONE","tls":"bump",'
    '"decision":"allow","rule":"inspect","error":"-","detail":"-"}',
    '{"time":1764252000.200,"client":"10.89.3.7","method":"POST","host":"github.com",'
    '"port":"443","path":"/org/p.git/git-receive-pack","status":"403","result":"TCP_DENIED",'
    '"tls":"bump","decision":"deny","rule":"github","error":"-","detail":"-"}',
    '{"time":1764252000.300,"client":"10.89.3.7","method":"GET","host":"pypi.org",'
    '"port":"443","path":"/simple/%1b%5b31m/","status":"200","result":"TCP_MISS",'
    '"tls":"bump","decision":"allow","rule":"pypi","error":"-","detail":"-"}',
    '{"time":1764252000.400,"client":"10.89.3.7","method":"CONNECT","host":"pinned.example",'
    '"port":"443","path":"-","status":"200","result":"NONE_NONE","tls":"bump",'
    '"decision":"allow","rule":"inspect","error":"ERR_SECURE_ACCEPT_FAIL",'
    '"detail":"SQUID_TLS_ERR_ACCEPT+TLS_LIB_ERR=A000418"}',
    '{"time": "not a time"}', '{"broken',
])


def test_audit_lines_give_method_host_path_decision_and_rule() -> None:
    records = parse(AUDIT)
    assert [(r.method, r.host, r.decision, r.rule) for r in records] == [
        ("CONNECT", "github.com", "allow", "inspect"),
        ("POST", "github.com", "deny", "github"),
        ("GET", "pypi.org", "allow", "pypi"),
        ("CONNECT", "pinned.example", "allow", "inspect")]
    assert records[1].url == "https://github.com/org/p.git/git-receive-pack"
    assert records[0].url == "github.com:443"
    assert [r.rule for r in blocked(AUDIT)] == ["github"]
    # The decision is paude's, not the status: an upstream 403 is not a refusal.
    assert not parse(AUDIT.replace('"status":"200","result":"TCP_MISS"',
                                   '"status":"403","result":"TCP_MISS"'))[2].blocked
    assert records[3].error == "ERR_SECURE_ACCEPT_FAIL SQUID_TLS_ERR_ACCEPT+TLS_LIB_ERR=A000418"


def test_audit_fields_stay_encoded() -> None:
    # The agent chose the path: its escape sequence stays percent-encoded, never raw.
    record = parse(AUDIT)[2]
    assert record.path == "/simple/%1b%5b31m/" and "\x1b" not in record.to_json()["url"]


GATEWAY_LOG = """\
1764252001.000 10.89.3.7 POST http://paude-demo-gateway:8080/v1/files 403 GATEWAY_DENIED
1764252002.500 10.89.3.7 POST http://paude-demo-gateway:8080/v1/messages 200 GATEWAY_FORWARDED
"""


def test_the_gateway_log_joins_the_proxy_log_in_time_order() -> None:
    records = blocked(LOG + GATEWAY_LOG)
    assert [r.result for r in records] == ["GATEWAY_DENIED", "TCP_DENIED", "TCP_DENIED"]
    assert records[0].url == "http://paude-demo-gateway:8080/v1/files"
