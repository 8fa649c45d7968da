"""paude.toolchain: finding, checking and installing the Pulumi engine (fake binaries only)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import socket
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paude import toolchain
from paude.errors import EngineMissingError
from paude.toolchain import (
    PULUMI_VERSION,
    Engine,
    engine_env,
    ensure_engine,
    find_engine,
    install_release,
    parse_version,
)

OLDER = "v3.100.0"
NEWER = "v3.300.2"


def fake_pulumi(folder: Path, version: str) -> Path:
    """A `pulumi` that answers `pulumi version` like the real one."""
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "pulumi"
    binary.write_text(f'#!/bin/sh\n[ "$1" = version ] && echo {version}\n', encoding="utf-8")
    binary.chmod(0o755)
    return binary


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PAUDE_HOME and a PATH with no pulumi on it."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("PAUDE_NO_ENGINE_DOWNLOAD", raising=False)
    monkeypatch.delenv("PAUDE_PULUMI_RELEASE_URL", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    return home


# ---------------------------------------------------------------- parse_version


@pytest.mark.parametrize(("text", "version"), [
    ("v3.274.1", (3, 274, 1)),
    ("3.274.1", (3, 274, 1)),
    ("v3.275.0-dev.0\n", (3, 275, 0)),
    ("pulumi version v10.2.33 (linux/amd64)", (10, 2, 33)),
])
def test_parse_version(text: str, version: tuple[int, int, int]) -> None:
    assert parse_version(text) == version


@pytest.mark.parametrize("text", ["", "unknown", "v3.274", "error: no"])
def test_parse_version_rejects_garbage(text: str) -> None:
    assert parse_version(text) is None


def test_versions_compare_numerically() -> None:
    older, pinned = parse_version("v3.99.0"), parse_version(PULUMI_VERSION)
    assert older is not None and pinned is not None and older < pinned


# ---------------------------------------------------------------- find_engine


def test_no_engine_anywhere(home: Path) -> None:
    assert find_engine(home) == (None, [])


def test_newer_engine_on_path_is_accepted(home: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    binary = fake_pulumi(tmp_path / "usr-bin", NEWER)
    monkeypatch.setenv("PATH", str(binary.parent))
    engine, problems = find_engine(home)
    assert engine == Engine(binary.parent.resolve(), NEWER, "PATH")
    assert engine.root == binary.parent.resolve().parent
    assert problems == []


def test_pinned_engine_is_accepted(home: Path) -> None:
    binary = fake_pulumi(home / "bin", f"v{PULUMI_VERSION}")
    engine, _ = find_engine(home)
    assert engine == Engine(binary.parent, f"v{PULUMI_VERSION}", "PAUDE_HOME")


def test_older_engine_is_rejected_with_a_problem(home: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    binary = fake_pulumi(tmp_path / "usr-bin", OLDER)
    monkeypatch.setenv("PATH", str(binary.parent))
    engine, problems = find_engine(home)
    assert engine is None
    assert problems == [f"{binary.resolve()} is pulumi {OLDER}, older than the required "
                        f"v{PULUMI_VERSION}"]


def test_paude_home_bin_is_preferred_over_path(home: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = fake_pulumi(tmp_path / "usr-bin", "v3.299.0")
    monkeypatch.setenv("PATH", str(on_path.parent))
    own = fake_pulumi(home / "bin", NEWER)
    engine, _ = find_engine(home)
    assert engine is not None
    assert (engine.bin_dir, engine.source, engine.version) == (own.parent, "PAUDE_HOME", NEWER)


def test_older_home_engine_falls_through_to_path(home: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pulumi(home / "bin", OLDER)
    on_path = fake_pulumi(tmp_path / "usr-bin", NEWER)
    monkeypatch.setenv("PATH", str(on_path.parent))
    engine, problems = find_engine(home)
    assert engine is not None and engine.source == "PATH"
    assert len(problems) == 1 and OLDER in problems[0]


def test_installed_engine_is_the_last_resort(home: Path) -> None:
    binary = fake_pulumi(home / "engine" / f"v{PULUMI_VERSION}" / "bin", f"v{PULUMI_VERSION}")
    engine, _ = find_engine(home)
    assert engine == Engine(binary.parent, f"v{PULUMI_VERSION}", "installed")


def test_engine_that_fails_to_run_is_skipped(home: Path) -> None:
    broken = home / "bin" / "pulumi"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    assert find_engine(home) == (None, [])


def test_non_executable_file_is_skipped(home: Path) -> None:
    fake_pulumi(home / "bin", NEWER).chmod(0o644)
    assert find_engine(home) == (None, [])


# ---------------------------------------------------------------- ensure_engine


def test_ensure_engine_returns_a_found_engine(home: Path) -> None:
    fake_pulumi(home / "bin", NEWER)
    assert ensure_engine(home, install=False).version == NEWER


def test_no_download_raises_engine_missing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAUDE_NO_ENGINE_DOWNLOAD", "1")
    monkeypatch.setattr(toolchain, "install_release",
                        lambda *_a, **_k: pytest.fail("must not download"))
    with pytest.raises(EngineMissingError) as exc:
        ensure_engine(home)
    assert exc.value.message == f"no Pulumi CLI found in {home / 'bin'} or on PATH"
    assert "scripts/build-engine.sh" in exc.value.render()
    assert "paude doctor" in exc.value.render()


def test_no_download_names_rejected_engines(home: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = fake_pulumi(tmp_path / "usr-bin", OLDER)
    monkeypatch.setenv("PATH", str(on_path.parent))
    with pytest.raises(EngineMissingError, match=r"older than the required"):
        ensure_engine(home, install=False)


# ---------------------------------------------------------------- install_release


def release_tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = tarfile.TarInfo("pulumi")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


PINNED_SCRIPT = f"#!/bin/sh\necho v{PULUMI_VERSION}\n".encode()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
# Incompressible padding so the download arrives in several chunks.
PADDING = os.urandom(200_000)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


@dataclass(frozen=True)
class Site:
    """A folder served over loopback HTTP."""

    root: Path
    base_url: str

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Site]:
    """A loopback HTTP server over a fresh folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    try:
        yield Site(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_install_release_unpacks_into_paude_home(home: Path, serve: Site) -> None:
    (serve.root / "pulumi.tar.gz").write_bytes(release_tarball({
        "pulumi/pulumi": PINNED_SCRIPT,
        "pulumi/pulumi-resource-pulumi-python": b"#!/bin/sh\n",
        "pulumi/pulumi-language-python": PADDING,
        "pulumi/README.md": b"not a binary",
    }))
    seen: list[tuple[int, int | None]] = []
    engine = install_release(home, url=serve.url("pulumi.tar.gz"),
                             sha256=sha(serve.root / "pulumi.tar.gz"),
                             progress=lambda done, total: seen.append((done, total)))
    bin_dir = home / "engine" / f"v{PULUMI_VERSION}" / "bin"
    assert engine == Engine(bin_dir, f"v{PULUMI_VERSION}", "installed")
    assert sorted(p.name for p in bin_dir.iterdir()) == [
        "pulumi", "pulumi-language-python", "pulumi-resource-pulumi-python"]
    assert all(os.access(p, os.X_OK) for p in bin_dir.iterdir())
    size = (serve.root / "pulumi.tar.gz").stat().st_size
    assert len(seen) > 1
    counts = [done for done, _ in seen]
    assert counts == sorted(set(counts))
    assert seen[-1] == (size, size)
    # The temporary download folder is gone.
    assert sorted(p.name for p in home.iterdir()) == ["engine"]


def test_install_release_reads_the_url_from_the_environment(
        home: Path, serve: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    (serve.root / "r.tar.gz").write_bytes(release_tarball({"pulumi/pulumi": PINNED_SCRIPT}))
    monkeypatch.setenv("PAUDE_PULUMI_RELEASE_URL", serve.url("r.tar.gz"))
    monkeypatch.setenv("PAUDE_PULUMI_RELEASE_SHA256", sha(serve.root / "r.tar.gz"))
    assert install_release(home).source == "installed"


def test_install_release_replaces_a_previous_install(home: Path, serve: Site) -> None:
    stale = home / "engine" / f"v{PULUMI_VERSION}" / "bin" / "stale"
    stale.parent.mkdir(parents=True)
    stale.write_text("x")
    (serve.root / "r.tar.gz").write_bytes(release_tarball({"pulumi/pulumi": PINNED_SCRIPT}))
    install_release(home, url=serve.url("r.tar.gz"), sha256=sha(serve.root / "r.tar.gz"))
    assert not stale.exists()


def test_hostile_tarball_members_stay_in_the_engine_folder(home: Path, serve: Site,
                                                          tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("pulumi/pulumi", PINNED_SCRIPT), ("../../pulumi-escape", b"x")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pulumi/pulumi-link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    (serve.root / "r.tar.gz").write_bytes(buffer.getvalue())
    install_release(home, url=serve.url("r.tar.gz"), sha256=sha(serve.root / "r.tar.gz"))
    bin_dir = home / "engine" / f"v{PULUMI_VERSION}" / "bin"
    # Paths are flattened to their last part and links are skipped.
    assert sorted(p.name for p in bin_dir.iterdir()) == ["pulumi", "pulumi-escape"]
    assert not any(p.is_symlink() for p in bin_dir.iterdir())
    assert not (home / "pulumi-escape").exists()
    assert not (tmp_path / "pulumi-escape").exists()


def test_tarball_without_pulumi_is_refused(home: Path, serve: Site) -> None:
    (serve.root / "r.tar.gz").write_bytes(release_tarball({"other/tool": b"#!/bin/sh\n"}))
    url = serve.url("r.tar.gz")
    with pytest.raises(EngineMissingError) as exc:
        install_release(home, url=url, sha256=sha(serve.root / "r.tar.gz"))
    assert exc.value.message == f"{url} did not contain a pulumi binary"
    assert "scripts/build-engine.sh" in exc.value.render()
    assert not (home / "engine").exists()


def test_missing_file_is_engine_missing(home: Path, serve: Site) -> None:
    with pytest.raises(EngineMissingError, match="could not download the Pulumi engine"):
        install_release(home, url=serve.url("absent.tar.gz"), sha256="0" * 64)


def test_unreachable_url_is_engine_missing(home: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/pulumi.tar.gz"
    with pytest.raises(EngineMissingError) as exc:
        install_release(home, url=url, sha256="0" * 64)
    assert exc.value.message.startswith(f"could not download the Pulumi engine from {url}: ")
    assert "scripts/build-engine.sh" in exc.value.render()


def test_download_that_is_not_a_tarball_is_engine_missing(home: Path, serve: Site) -> None:
    (serve.root / "r.tar.gz").write_text("<html>captive portal</html>")
    with pytest.raises(EngineMissingError):
        install_release(home, url=serve.url("r.tar.gz"), sha256=sha(serve.root / "r.tar.gz"))


def test_downloaded_engine_that_does_not_run_is_refused(home: Path, serve: Site) -> None:
    broken = release_tarball({"pulumi/pulumi": b"#!/bin/sh\nexit 1\n"})
    (serve.root / "r.tar.gz").write_bytes(broken)
    with pytest.raises(EngineMissingError, match="the downloaded Pulumi engine does not run"):
        install_release(home, url=serve.url("r.tar.gz"), sha256=sha(serve.root / "r.tar.gz"))


def test_a_tampered_archive_is_refused_and_nothing_is_installed(home: Path, serve: Site) -> None:
    good = release_tarball({"pulumi/pulumi": PINNED_SCRIPT})
    pinned = hashlib.sha256(good).hexdigest()
    installed = home / "engine" / f"v{PULUMI_VERSION}" / "bin" / "pulumi"
    # Control: the archive the checksum was taken of installs.
    (serve.root / "r.tar.gz").write_bytes(good)
    install_release(home, url=serve.url("r.tar.gz"), sha256=pinned)
    before = installed.read_bytes()
    # The same name, one binary swapped for the attacker's.
    (serve.root / "r.tar.gz").write_bytes(release_tarball(
        {"pulumi/pulumi": b"#!/bin/sh\ntouch /tmp/owned; echo v" + PULUMI_VERSION.encode()}))
    with pytest.raises(EngineMissingError) as exc:
        install_release(home, url=serve.url("r.tar.gz"), sha256=pinned)
    assert f"not the expected {pinned}: refused, nothing was installed" in exc.value.message
    assert "do not run it" in exc.value.render()
    assert installed.read_bytes() == before  # the verified install is untouched
    assert sorted(p.name for p in home.iterdir()) == ["engine"]  # no download left behind


def test_a_pinned_checksum_is_found_by_the_archive_name(
        home: Path, serve: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"pulumi-v{PULUMI_VERSION}-linux-x64.tar.gz"
    (serve.root / name).write_bytes(release_tarball({"pulumi/pulumi": PINNED_SCRIPT}))
    monkeypatch.delenv("PAUDE_PULUMI_RELEASE_SHA256", raising=False)
    monkeypatch.setattr(toolchain, "RELEASE_SHA256", {name: sha(serve.root / name).upper()})
    assert install_release(home, url=serve.url(name)).source == "installed"
    monkeypatch.setattr(toolchain, "RELEASE_SHA256", {name: "1" * 64})
    with pytest.raises(EngineMissingError, match="refused, nothing was installed"):
        install_release(home, url=serve.url(name))


def test_nothing_is_downloaded_without_a_checksum(home: Path, serve: Site,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAUDE_PULUMI_RELEASE_SHA256", raising=False)
    monkeypatch.setattr(toolchain, "RELEASE_SHA256", {})
    monkeypatch.setattr(toolchain, "_download",
                        lambda *_a: pytest.fail("must not download an unverifiable engine"))
    with pytest.raises(EngineMissingError) as exc:
        install_release(home, url=serve.url("pulumi.tar.gz"))
    assert exc.value.message.startswith("paude has no checksum pinned for pulumi.tar.gz")
    assert "PAUDE_PULUMI_RELEASE_SHA256" in exc.value.render()
    assert "scripts/build-engine.sh" in exc.value.render()
    with pytest.raises(EngineMissingError, match="is not a SHA-256"):
        install_release(home, url=serve.url("pulumi.tar.gz"), sha256="abc")
    assert not (home / "engine").exists()


# ---------------------------------------------------------------- engine_env


def test_engine_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = engine_env(Engine(tmp_path / "bin", NEWER, "PATH"))
    assert env["PULUMI_PYTHON_CMD"] == sys.executable
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PATH"] == f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin"
    assert env["PATH"].split(os.pathsep)[0] == str(tmp_path / "bin")


def test_machine_engine_path_comes_first(home: Path, tmp_path: Path) -> None:
    fake_pulumi(home / "bin", NEWER)
    chosen = fake_pulumi(tmp_path / "opt" / "pulumi-bin", f"v{PULUMI_VERSION}")
    (home / "config.yaml").write_text(f"version: 1\nengine: {{path: {chosen.parent}}}\n")
    engine, _ = find_engine(home)
    assert engine is not None
    assert (engine.bin_dir, engine.source) == (chosen.parent, "config.yaml")


def test_render_uses_the_engine_paude_installed(home: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # `paude plan NAME --render DIR` keeps its state in a throwaway folder; the engine is
    # still the one in PAUDE_HOME/bin (no download is tried: none could work here).
    from paude import inspection, sessions

    own = fake_pulumi(home / "bin", f"v{PULUMI_VERSION}")
    monkeypatch.setenv("PAUDE_HOME", str(home))
    monkeypatch.setenv("PAUDE_NO_ENGINE_DOWNLOAD", "1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-unit-placeholder")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "paude.yaml").write_text(
        "version: 1\nsessions:\n  kube:\n    backend: openshift\n"
        "    openshift: {namespace: demo}\n")
    seen: list[Path] = []

    class Stop(Exception):
        pass

    def fake_open(ctx: object, *_args: object, **_kw: object) -> object:
        seen.append(ctx.engine.bin_dir)  # type: ignore[attr-defined]
        raise Stop

    monkeypatch.setattr(sessions, "open_stack", fake_open)
    with pytest.raises(Stop):
        inspection.render("kube", tmp_path / "out", cwd=repo)
    assert seen == [own.parent]


def test_a_machine_engine_path_without_pulumi_is_named(home: Path, tmp_path: Path) -> None:
    (home / "config.yaml").write_text(f"version: 1\nengine: {{path: {tmp_path / 'nothing'}}}\n")
    own = fake_pulumi(home / "bin", NEWER)
    engine, problems = find_engine(home)
    assert engine is not None and engine.bin_dir == own.parent
    assert problems == [f"engine.path of config.yaml: {tmp_path / 'nothing' / 'pulumi'} "
                        "does not run"]


def test_the_engine_version_is_asked_once_per_binary(home: Path) -> None:
    binary = fake_pulumi(home / "bin", f"v{PULUMI_VERSION}")
    count = home / "asked"
    binary.write_text(f'#!/bin/sh\necho x >> {count}\n'
                      f'[ "$1" = version ] && echo v{PULUMI_VERSION}\n', encoding="utf-8")
    for _ in range(3):
        engine, _ = find_engine(home)
        assert engine is not None and engine.version == f"v{PULUMI_VERSION}"
    assert count.read_text().count("x") == 1
    # A replaced binary (another size, time or inode) is asked again, and its answer counts.
    binary.unlink()
    fake_pulumi(home / "bin", OLDER)
    engine, problems = find_engine(home)
    assert engine is None and OLDER in problems[0]
