"""Finds the Pulumi CLI paude drives, or installs the pinned release into PAUDE_HOME."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import platform
import re
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paude import proc
from paude.errors import EngineMissingError
from paude.home import write_if_changed

# The engine release paude is tested with; older CLIs are refused, newer ones accepted.
PULUMI_VERSION = "3.274.1"
RELEASE_URL = "https://get.pulumi.com/releases/sdk/pulumi-v{version}-{os}-{arch}.tar.gz"
BUILD_HINT = ("on machines without access to get.pulumi.com, build the engine from Go "
              "modules: scripts/build-engine.sh (from the paude repository)")
# SHA-256 of each release archive paude may download, by file name, as Pulumi publishes
# them in pulumi-<version>-checksums.txt. A downloaded engine runs as the user, so an
# archive is unpacked only when it matches; a platform with no entry is not downloaded
# at all. None are pinned for this release yet: the machines paude is built on cannot
# reach Pulumi's checksum files, and a value not read from them would vouch for nothing.
RELEASE_SHA256: dict[str, str] = {}
_SHA256 = re.compile(r"[0-9a-f]{64}")

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Engine:
    """A usable Pulumi CLI: its bin directory (plugins sit beside it) and version."""

    bin_dir: Path
    version: str
    source: str  # "config.yaml", "PAUDE_HOME", "PATH" or "installed"

    @property
    def root(self) -> Path:
        """The directory whose bin/ holds pulumi (what the Automation API expects)."""
        return self.bin_dir.parent


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from `pulumi version` output such as 'v3.274.1'."""
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _probe(binary: Path, cache: Path | None = None) -> str | None:
    """`pulumi version` of a binary. With `cache`, remembered per file (path, inode, size,
    modification time): the engine takes a fifth of a second to say it, on every command."""
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return None
    try:
        info = binary.resolve().stat()
        key = f"{binary.resolve()}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"
    except OSError:
        key = ""
    known = _cached_versions(cache) if cache and key else {}
    if key in known:
        return known[key]
    result = proc.run([str(binary), "version"], check=False,
                      env={"PULUMI_SKIP_UPDATE_CHECK": "true"}, timeout=30)
    if not result.ok:
        return None
    version = result.stdout.strip()
    if cache and key and parse_version(version):
        with contextlib.suppress(OSError):
            write_if_changed(cache, json.dumps({**known, key: version}, sort_keys=True) + "\n")
    return version


def _cached_versions(cache: Path) -> dict[str, str]:
    try:
        found = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def candidates(home: Path) -> list[tuple[Path, str]]:
    """Places a pulumi CLI may be, in order of preference: this machine's engine.path, the
    folder the set-up installs into ($PAUDE_HOME/bin), PATH, a release paude downloaded."""
    from paude import machine  # machine settings parse with pydantic: only when searching

    found: list[tuple[Path, str]] = []
    chosen = machine.load(home).engine.path
    if chosen:
        found.append((Path(chosen).expanduser() / "pulumi", "config.yaml"))
    found.append((home / "bin" / "pulumi", "PAUDE_HOME"))
    on_path = shutil.which("pulumi")
    if on_path:
        found.append((Path(on_path).resolve(), "PATH"))
    found.append((home / "engine" / f"v{PULUMI_VERSION}" / "bin" / "pulumi", "installed"))
    return found


def find_engine(home: Path) -> tuple[Engine | None, list[str]]:
    """The first CLI at least as new as the pin, plus why others were skipped."""
    minimum = parse_version(PULUMI_VERSION)
    assert minimum is not None
    problems: list[str] = []
    for binary, source in candidates(home):
        text = _probe(binary, home / "engine" / "versions.json")
        if text is None:
            if source == "config.yaml":  # chosen on purpose: say why it was passed over
                problems.append(f"engine.path of config.yaml: {binary} does not run")
            continue
        version = parse_version(text)
        if version is None or version < minimum:
            problems.append(f"{binary} is pulumi {text}, older than the required v{PULUMI_VERSION}")
            continue
        return Engine(binary.parent, text, source), problems
    return None, problems


def ensure_engine(home: Path, *, progress: Progress | None = None,
                  install: bool = True) -> Engine:
    """A usable engine: found, or the pinned release downloaded into PAUDE_HOME."""
    engine, problems = find_engine(home)
    if engine is not None:
        return engine
    if not install or os.environ.get("PAUDE_NO_ENGINE_DOWNLOAD"):
        raise EngineMissingError(
            "no Pulumi CLI found " + ("(" + "; ".join(problems) + ")" if problems else
                                      f"in {home / 'bin'} or on PATH"),
            hint=f"run `paude doctor`; {BUILD_HINT}")
    return install_release(home, progress=progress)


def release_url(version: str = PULUMI_VERSION) -> str:
    """The release tarball for this machine."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower())
    system = {"darwin": "darwin", "linux": "linux"}.get(platform.system().lower(), "linux")
    return RELEASE_URL.format(version=version, os=system, arch=arch)


def expected_sha256(url: str, sha256: str | None = None) -> str:
    """The SHA-256 the archive at `url` must have; refuses a download nothing vouches for."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    value = (sha256 or os.environ.get("PAUDE_PULUMI_RELEASE_SHA256")
             or RELEASE_SHA256.get(name) or "").strip().lower()
    if not value:
        raise EngineMissingError(
            f"paude has no checksum pinned for {name}, so it does not download it: an "
            "engine it cannot verify would run as you",
            hint=f"{BUILD_HINT}; or install Pulumi v{PULUMI_VERSION} yourself and set "
                 "engine.path in ~/.paude/config.yaml; or, for an archive you have checked, "
                 "set PAUDE_PULUMI_RELEASE_SHA256 to its SHA-256 from Pulumi's "
                 f"pulumi-{PULUMI_VERSION}-checksums.txt")
    if not _SHA256.fullmatch(value):
        raise EngineMissingError(f"the engine checksum {value!r} is not a SHA-256 (64 hex "
                                 "digits)", hint="copy it from Pulumi's checksums file")
    return value


def install_release(home: Path, *, url: str | None = None, sha256: str | None = None,
                    progress: Progress | None = None) -> Engine:
    """Download the pinned release, check its SHA-256, and unpack it into
    PAUDE_HOME/engine/vX/bin; a mismatch installs nothing.

    The checksum is `sha256`, else PAUDE_PULUMI_RELEASE_SHA256 (for a mirror's own
    archive: whoever sets it vouches for it), else the one pinned for the archive's name."""
    url = url or os.environ.get("PAUDE_PULUMI_RELEASE_URL") or release_url()
    expected = expected_sha256(url, sha256)
    target = home / "engine" / f"v{PULUMI_VERSION}"
    with tempfile.TemporaryDirectory(prefix="paude-engine-", dir=home) as tmp:
        archive = Path(tmp) / "pulumi.tar.gz"
        try:
            digest = _download(url, archive, progress)
        except OSError as exc:
            raise EngineMissingError(f"could not download the Pulumi engine from {url}: {exc}",
                                     hint=BUILD_HINT) from exc
        if not hmac.compare_digest(digest, expected):
            raise EngineMissingError(
                f"the Pulumi engine archive from {url} has SHA-256 {digest}, not the expected "
                f"{expected}: refused, nothing was installed",
                hint="the download was changed on the way or at its source; do not run it. "
                     + BUILD_HINT)
        staging = Path(tmp) / "bin"
        staging.mkdir()
        try:
            tar = tarfile.open(archive)  # noqa: SIM115 - closed by the `with` below
        except tarfile.TarError as exc:
            raise EngineMissingError(f"{url} did not return a release archive ({exc})",
                                     hint=BUILD_HINT) from exc
        with tar:
            for member in tar.getmembers():
                # The release holds pulumi/<binary>; flatten it and refuse anything odd.
                name = Path(member.name).name
                if not member.isfile() or not name.startswith("pulumi"):
                    continue
                extracted = tar.extractfile(member)
                if extracted is None:
                    continue
                dest = staging / name
                dest.write_bytes(extracted.read())
                dest.chmod(0o755)
        if not (staging / "pulumi").exists():
            raise EngineMissingError(f"{url} did not contain a pulumi binary", hint=BUILD_HINT)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        staging.rename(target / "bin")
    engine, problems = find_engine(home)
    if engine is None:
        raise EngineMissingError(
            "the downloaded Pulumi engine does not run: " + "; ".join(problems), hint=BUILD_HINT)
    return engine


def _download(url: str, dest: Path, progress: Progress | None) -> str:
    """Save `url` to `dest`; returns the SHA-256 of what arrived."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
        total_header = response.headers.get("Content-Length")
        total = int(total_header) if total_header else None
        done = 0
        while chunk := response.read(1 << 16):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def engine_env(engine: Engine) -> dict[str, str]:
    """Environment for every engine run: no downloads, our interpreter, plugins beside the CLI."""
    import sys

    return {
        "PATH": f"{engine.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # Dynamic providers run `python -m pulumi.dynamic`; it must be paude's interpreter.
        "PULUMI_PYTHON_CMD": sys.executable,
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
    }
