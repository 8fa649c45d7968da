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
                                "client": "10.89.3.7", "method": "CONNECT",
                                "url": "203.0.113.5:443", "status": 403,
                                "result": "TCP_DENIED"}


GATEWAY_LOG = """\
1764252001.000 10.89.3.7 POST http://paude-demo-gateway:8080/v1/files 403 GATEWAY_DENIED
1764252002.500 10.89.3.7 POST http://paude-demo-gateway:8080/v1/messages 200 GATEWAY_FORWARDED
"""


def test_the_gateway_log_joins_the_proxy_log_in_time_order() -> None:
    records = blocked(LOG + GATEWAY_LOG)
    assert [r.result for r in records] == ["GATEWAY_DENIED", "TCP_DENIED", "TCP_DENIED"]
    assert records[0].url == "http://paude-demo-gateway:8080/v1/files"
