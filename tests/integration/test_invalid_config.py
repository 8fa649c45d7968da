"""Invalid definitions exit 1 with an error naming the field, and create nothing."""

from __future__ import annotations

import pytest

from tests.integration.helpers import BASE_IMAGE, Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi]


def _nothing_created(paude: Paude, name: str) -> None:
    label = f"label=paude.session={name}"
    assert podman("ps", "-aq", "--filter", label).stdout.strip() == ""
    assert podman("network", "ls", "-q", "--filter", label).stdout.strip() == ""
    assert podman("volume", "ls", "-q", "--filter", label).stdout.strip() == ""
    stacks = paude.home / "state" / ".pulumi" / "stacks"
    assert not stacks.exists() or not any(stacks.rglob("*.json")), "a stack was created"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (f"version: 1\ndefaults:\n  image:\n    base: {BASE_IMAGE}\n    pakages: [jq]\n"
         "sessions:\n  NAME: {}\n", ["defaults.image.pakages", "unknown field", "packages"]),
        (f"version: 1\nsessions:\n  NAME:\n    yolo: 'yes'\n    image: {{base: {BASE_IMAGE}}}\n",
         ["sessions.NAME.yolo"]),
        ("version: 1\nsessions:\n  NAME:\n    image:\n      packages: make\n",
         ["sessions.NAME.image.packages"]),
        ("version: 1\nsessions:\n  NAME:\n    image:\n      packages: ['jq; curl evil']\n",
         ["sessions.NAME.image.packages.0"]),
    ],
    ids=["unknown-key", "yolo-string", "packages-not-list", "package-injection"],
)
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_invalid_file(paude: Paude, yaml_text: str, expected: list[str], command: str) -> None:
    (paude.repo / "paude.yaml").write_text(yaml_text.replace("NAME", paude.session))
    args = [command, paude.session] + (["--yes"] if command == "apply" else [])
    result = paude.run(*args)
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr.replace(paude.session, "NAME")
    assert "paude.yaml" in message
    for fragment in expected:
        assert fragment in message, message
    assert "Traceback" not in result.stderr
    _nothing_created(paude, paude.session)


@pytest.mark.parametrize("bad", ["../x", "a b", "-rf", "Demo", "x_y"])
def test_bad_session_name_in_file(paude: Paude, bad: str) -> None:
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\nsessions:\n  {bad!r}: {{}}\n  {paude.session}: {{}}\n")
    result = paude.run("apply", paude.session, "--yes")
    assert result.returncode == 1, result.stdout + result.stderr
    # A key with a space is quoted in the path so the field stays visible.
    shown = repr(bad) if " " in bad else bad
    assert f"sessions.{shown}" in result.stderr, result.stderr
    _nothing_created(paude, paude.session)


@pytest.mark.parametrize("bad", ["../x", "a b", "-rf"])
def test_bad_session_name_argument(paude: Paude, bad: str) -> None:
    result = paude.run("apply", "--yes", "--", bad)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NAME" in result.stderr and "Traceback" not in result.stderr
    _nothing_created(paude, paude.session)
