"""scripts/build-proxy-base.sh decides when to rebuild (podman faked; the real build runs in
CI and is checked by tests/integration/test_egress_rules.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-proxy-base.sh"
BASE, TAG = "localhost/base:1", "localhost/proxy-base:1"

# A podman that knows two images: BASE and TAG, built from BASE. `run` answers with the
# squid-openssl versions (installed, archive's candidate) from the environment, or fails
# like an archive that does not answer; `build` is recorded and fails.
FAKE_PODMAN = r"""#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$1 $2" in
  "image exists") exit 0 ;;
  "image inspect")
    case "$4" in
      *proxy-base-from*) echo "sha256:base" ;;
      *) [[ "$5" == "$FAKE_BASE" ]] && echo "sha256:base" || echo "sha256:tag" ;;
    esac ;;
  "run --rm")
    [[ -n "$FAKE_CANDIDATE" ]] || exit 100
    echo "$FAKE_INSTALLED $FAKE_CANDIDATE" ;;
  build*) exit 1 ;;
  *) exit 1 ;;
esac
"""


def build(tmp_path: Path, *args: str, installed: str = "5.7-2+deb12u6",
          candidate: str = "5.7-2+deb12u6") -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    podman = bin_dir / "podman"
    podman.write_text(FAKE_PODMAN)
    podman.chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls),
           "FAKE_BASE": BASE, "FAKE_INSTALLED": installed, "FAKE_CANDIDATE": candidate,
           "PAUDE_IMAGE_CACHE": str(tmp_path / "cache"),
           "PAUDE_BUILD_TMP": str(tmp_path)}
    done = subprocess.run(["bash", str(SCRIPT), *args, BASE, TAG], env=env, text=True,
                          capture_output=True, timeout=60, check=False)
    return done, calls.read_text()


def test_a_current_image_is_kept_without_asking_the_archive(tmp_path: Path) -> None:
    done, calls = build(tmp_path, candidate="5.7-2+deb12u7")
    assert done.returncode == 0, done.stderr
    assert f"{TAG} is present" in done.stderr
    assert "run --rm" not in calls and "build" not in calls


def test_refresh_keeps_the_image_when_the_archive_has_the_same_squid(tmp_path: Path) -> None:
    done, calls = build(tmp_path, "--refresh")
    assert done.returncode == 0, done.stderr
    assert f"{TAG} is present" in done.stderr
    # Asked once, although the lock makes the script look twice.
    assert calls.count("run --rm") == 1
    assert "build" not in calls


def test_refresh_rebuilds_when_the_archive_has_a_newer_squid(tmp_path: Path) -> None:
    done, calls = build(tmp_path, "--refresh", candidate="5.7-2+deb12u7")
    assert "the archive has squid-openssl 5.7-2+deb12u7 (the rebuild is 5.7-2+deb12u6)" \
        in done.stderr
    assert "build --quiet" in calls  # the fake build fails, so the script does too
    assert done.returncode != 0


def test_refresh_keeps_the_image_when_the_archive_does_not_answer(tmp_path: Path) -> None:
    done, calls = build(tmp_path, "--refresh", candidate="")
    assert done.returncode == 0, done.stderr
    assert "cannot ask Debian's archive" in done.stderr
    assert "build" not in calls
