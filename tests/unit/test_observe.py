"""Drift: what podman inspect says a container is, against what the stack declared."""

from __future__ import annotations

import base64
import copy
import os
from pathlib import Path
from typing import Any

import pytest

from paude.backends.base import SQUID_CONF
from paude.proc import CommandResult
from paude.stacks.podman import observe
from paude.stacks.podman.observe import DEFAULT_CAPS, drift

SECRET = "sk-ant-not-a-real-key-1234"
PROPS: dict[str, Any] = {
    "name": "paude-demo-agent", "container_id": "cid", "user": "paude",
    "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
    "volumes": ["paude-demo-workspace:/workspace", "/stage/adc.json:/home/paude/adc.json:ro"],
    "env": {"HTTPS_PROXY": "http://paude-demo-proxy:3128", "PAUDE_SESSION": "demo"},
    "secret_env": {"ANTHROPIC_API_KEY": SECRET},
    "add_hosts": ["paude-demo-proxy:10.0.0.254"],
    "labels": {"paude.session": "demo", "paude.role": "agent"},
}
IMAGE = {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "User": "paude"}
RUNNING: dict[str, Any] = {
    "Id": "cid",
    "HostConfig": {"Privileged": False, "CapAdd": [], "CapDrop": sorted(DEFAULT_CAPS),
                   "SecurityOpt": ["no-new-privileges"], "ReadonlyRootfs": False,
                   "PortBindings": {"3128/tcp": None}, "Devices": [], "RestartPolicy": {"Name": ""},
                   "ExtraHosts": ["paude-demo-proxy:10.0.0.254"], "NetworkMode": "bridge",
                   "PidMode": "private"},
    "Config": {"User": "paude", "Labels": {"paude.session": "demo", "paude.role": "agent"},
               "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOSTNAME=x", "container=podman",
                       "HTTPS_PROXY=http://paude-demo-proxy:3128", "PAUDE_SESSION=demo",
                       f"ANTHROPIC_API_KEY={SECRET}"]},
    "Mounts": [{"Type": "volume", "Name": "paude-demo-workspace", "Source": "/var/lib/x",
                "Destination": "/workspace", "RW": True},
               {"Type": "bind", "Source": "/stage/adc.json",
                "Destination": "/home/paude/adc.json", "RW": False}],
}


def changed(**edits: Any) -> dict[str, Any]:
    found = copy.deepcopy(RUNNING)
    for path, value in edits.items():
        section, _, key = path.partition("__")
        if key:
            found[section][key] = value
        else:
            found[section] = value
    return found


def test_the_container_as_declared_has_no_drift() -> None:
    assert drift(RUNNING, PROPS, IMAGE) == []


@pytest.mark.parametrize(("edits", "line"), [
    ({"Id": "other"}, "replaced outside paude: another container has its name"),
    ({"HostConfig__Privileged": True}, "privileged"),
    ({"HostConfig__PidMode": "host"}, "shares the host's namespace (PidMode)"),
    ({"HostConfig__CapAdd": ["CAP_SYS_ADMIN"]}, "capabilities kept: CAP_SYS_ADMIN"),
    ({"HostConfig__CapDrop": []}, "capabilities kept: CAP_AUDIT_WRITE"),
    ({"HostConfig__SecurityOpt": []}, "security options removed: no-new-privileges"),
    ({"HostConfig__SecurityOpt": ["no-new-privileges", "seccomp=unconfined"]},
     "security options added: seccomp=unconfined"),
    ({"Config__User": "root"}, "user root (declared paude)"),
    ({"HostConfig__ReadonlyRootfs": True}, "read-only root on"),
    ({"HostConfig__PortBindings": {"22/tcp": [{"HostPort": "2222"}]}},
     "ports published on the host: 22/tcp"),
    ({"HostConfig__Devices": [{"PathOnHost": "/dev/kvm"}]}, "host devices added"),
    ({"HostConfig__RestartPolicy": {"Name": "always"}}, "restart policy always"),
    ({"HostConfig__ExtraHosts": ["paude-demo-proxy:10.0.0.9"]},
     "host entries paude-demo-proxy:10.0.0.9"),
    ({"Config__Labels": {"paude.session": "demo"}}, "label paude.role is None"),
])
def test_each_hand_made_change_is_one_line(edits: dict[str, Any], line: str) -> None:
    found = drift(changed(**edits), PROPS, IMAGE)
    assert any(d.startswith(line) for d in found), found


def test_a_host_bind_mount_and_a_writable_credential_are_drift() -> None:
    mounts = [*RUNNING["Mounts"], {"Type": "bind", "Source": "/", "Destination": "/host",
                                   "RW": True}]
    assert drift(changed(Mounts=mounts), PROPS, IMAGE) == ["mount added: /:/host"]
    writable = [RUNNING["Mounts"][0], {**RUNNING["Mounts"][1], "RW": True}]
    assert drift(changed(Mounts=writable), PROPS, IMAGE) == [
        "mount added: /stage/adc.json:/home/paude/adc.json",
        "mount missing: /stage/adc.json:/home/paude/adc.json:ro"]


def test_environment_drift_names_variables_never_secret_values() -> None:
    env = [e for e in RUNNING["Config"]["Env"] if not e.startswith("HTTPS_PROXY=")]
    env += ["HTTPS_PROXY=http://attacker:8080", "EXTRA=1", f"ANTHROPIC_API_KEY={SECRET}-x"]
    found = drift(changed(Config__Env=env), PROPS, IMAGE)
    assert found == ["environment EXTRA added", "environment HTTPS_PROXY changed"]
    assert not any(SECRET in line for line in found)


def test_the_image_s_own_user_and_variables_are_not_drift() -> None:
    proxy = {k: v for k, v in PROPS.items() if k != "user"}
    found = changed(Config__User="proxy")
    assert drift(found, proxy, {**IMAGE, "User": "proxy"}) == []
    assert drift(found, proxy, IMAGE) == ["user proxy (declared paude)"]  # control


def test_an_edited_squid_configuration_inside_the_proxy_is_drift(
        monkeypatch: pytest.MonkeyPatch) -> None:
    declared = "http_port 3128\nhttp_access deny all\n"
    props = {"env": {"PAUDE_SQUID_CONF_B64": base64.b64encode(declared.encode()).decode()}}
    running = {"text": declared}

    def run(argv: list[str], **_: Any) -> CommandResult:
        assert argv[-2:] == ["cat", SQUID_CONF]
        return CommandResult(argv, 0, running["text"], "")

    monkeypatch.setattr(observe.proc, "run", run)
    assert observe.proxy_config("paude-demo-proxy", props) == []
    running["text"] = declared.replace("deny all", "allow all")
    assert observe.proxy_config("paude-demo-proxy", props) == [
        f"squid configuration edited inside the proxy ({SQUID_CONF})"]
    assert observe.proxy_config("paude-demo-agent", {"env": {}}) == []


# ---------------------------------------------------------------- read_in_container()


def _container_root(tmp_path: Path) -> Path:
    """A fake /proc whose process 42 has `root` as its container's root folder."""
    root = tmp_path / "proc" / "42" / "root"
    (root / "etc" / "squid" / "paude").mkdir(parents=True)
    return tmp_path / "proc"


def test_a_file_in_the_container_is_read_from_the_host(tmp_path: Path) -> None:
    proc = _container_root(tmp_path)
    (proc / "42" / "root" / "etc/squid/paude/squid.conf").write_text("http_access deny all\n")
    assert observe.read_in_container(42, "/etc/squid/paude/squid.conf", proc) == (
        "http_access deny all\n")


@pytest.mark.parametrize("where", ["file", "folder"])
def test_no_link_in_the_container_is_followed(tmp_path: Path, where: str) -> None:
    # The attack: a link inside the container, resolved by the host, points at a host file.
    proc = _container_root(tmp_path)
    host_secret = tmp_path / "host-secret"
    host_secret.write_text("the host's own file\n")
    conf = proc / "42" / "root" / "etc/squid/paude/squid.conf"
    if where == "file":
        conf.symlink_to(host_secret)
    else:
        folder = proc / "42" / "root" / "etc/squid/paude"
        folder.rmdir()
        (tmp_path / "host-dir").mkdir()
        (tmp_path / "host-dir" / "squid.conf").write_text("the host's own file\n")
        folder.symlink_to(tmp_path / "host-dir")
    assert observe.read_in_container(42, "/etc/squid/paude/squid.conf", proc) is None
    # Control: the same path without a link is read.
    if where == "file":
        conf.unlink()
    else:
        (proc / "42" / "root" / "etc/squid/paude").unlink()
        conf.parent.mkdir()
    conf.write_text("the container's file\n")
    assert observe.read_in_container(42, "/etc/squid/paude/squid.conf", proc) == (
        "the container's file\n")


def test_a_fifo_or_a_missing_process_is_not_read(tmp_path: Path) -> None:
    proc = _container_root(tmp_path)
    os.mkfifo(proc / "42" / "root" / "etc/squid/paude/squid.conf")
    assert observe.read_in_container(42, "/etc/squid/paude/squid.conf", proc) is None
    assert observe.read_in_container(7, "/etc/squid/paude/squid.conf", proc) is None
    assert observe.read_in_container(42, "/etc/../etc/passwd", proc) is None


def test_proxy_config_reads_from_the_host_before_asking_the_container(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    declared = "http_access deny all\n"
    props = {"env": {"PAUDE_SQUID_CONF_B64": base64.b64encode(declared.encode()).decode()}}
    monkeypatch.setattr(observe, "read_in_container", lambda pid, path: declared)
    monkeypatch.setattr(observe.proc, "run", lambda *a, **k: pytest.fail("no podman exec"))
    assert observe.proxy_config("paude-demo-proxy", props, 42) == []
    monkeypatch.setattr(observe, "read_in_container", lambda pid, path: "http_access allow all\n")
    assert observe.proxy_config("paude-demo-proxy", props, 42) == [
        "squid configuration edited inside the proxy (/etc/squid/paude/squid.conf)"]
