"""The seed's command forms against real podman and the engine: bare `paude plan/apply/destroy`
over a repository's sessions, and `paude create --git`."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.helpers import Paude, podman, remove_session_objects, write_paude_yaml

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]


def containers(session: str) -> list[str]:
    return sorted(podman("ps", "-a", "--filter", f"label=paude.session={session}",
                         "--format", "{{.Names}}").stdout.split())


def running(container: str) -> bool:
    result = podman("inspect", "--format", "{{.State.Running}}", container, check=False)
    return result.stdout.strip() == "true"


def test_bare_plan_apply_destroy_act_on_every_session(paude: Paude) -> None:
    first, second = paude.session, f"{paude.session}-b"
    write_paude_yaml(paude.repo, first, extra=f"  {second}: {{}}\n")
    try:
        planned = paude.run("plan", "--detailed-exitcode")
        assert planned.returncode == 2, planned.stderr
        assert f"Session {first} (podman)" in planned.stdout
        assert f"Session {second} (podman)" in planned.stdout

        # Without --yes and without a terminal the one question is answered no: nothing made.
        declined = paude.run("apply")
        assert declined.returncode == 1
        assert declined.stderr.count("[y/N]") == 1
        assert f"Apply these changes to sessions {first}, {second}? [y/N] no" in declined.stderr
        assert containers(first) == [] and containers(second) == []

        paude.ok("apply", "--yes")
        for name in (first, second):
            assert running(f"paude-{name}-agent") and running(f"paude-{name}-proxy")
        assert paude.run("plan", "--detailed-exitcode").returncode == 0

        declined = paude.run("destroy")
        assert declined.returncode == 1
        assert (f"destroy sessions {first}, {second}: remove their containers, networks? "
                "[y/N] no") in declined.stderr
        assert running(f"paude-{first}-agent") and running(f"paude-{second}-agent")

        destroyed = paude.ok("destroy", "--yes")
        assert f"Session {first} destroyed" in destroyed.stdout
        assert f"Session {second} destroyed" in destroyed.stdout
        assert containers(first) == [] and containers(second) == []
        for name in (first, second):  # kept, as with `destroy NAME`
            assert podman("volume", "exists", f"paude-{name}-workspace",
                          check=False).returncode == 0
        again = paude.ok("destroy", "--yes")
        assert "nothing to destroy" in again.stderr
    finally:
        remove_session_objects(second)


def git(paude: Paude, *args: str) -> str:
    env = paude.env()
    result = subprocess.run(["git", *args], cwd=paude.repo, env=env, capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, f"git {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def in_agent(paude: Paude, script: str) -> str:
    result = podman("exec", f"paude-{paude.session}-agent", "sh", "-c", script, check=False)
    assert result.returncode == 0, f"in the agent: {script}\n{result.stderr}"
    return result.stdout


TOKEN = "ghp_seedTestToken0123456789"


def test_create_git_pushes_branch_tags_and_origin_without_credentials(paude: Paude) -> None:
    name, repo = paude.session, paude.repo
    (paude.home.parent / "user-home" / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.invalid\n", encoding="utf-8")
    git(paude, "symbolic-ref", "HEAD", "refs/heads/main")
    git(paude, "remote", "add", "origin", f"https://someone:{TOKEN}@git.example.invalid/org/r.git")
    before = (repo / "paude.yaml").read_text(encoding="utf-8")

    # Nothing to push yet: refused before paude.yaml or any container changes.
    refused = paude.run("create", name, "--git")
    assert refused.returncode == 1
    assert "has no commits yet" in refused.stderr
    assert (repo / "paude.yaml").read_text(encoding="utf-8") == before
    assert containers(name) == []

    (repo / "app.py").write_text("print('hi')\n", encoding="utf-8")
    git(paude, "add", "-A")
    git(paude, "commit", "-qm", "first")
    git(paude, "tag", "v1")
    git(paude, "tag", "-a", "v1.1", "-m", "annotated")
    head = git(paude, "rev-parse", "HEAD").strip()

    created = paude.ok("create", name, "--git")
    assert f"pushed main and 2 tags to session {name}" in created.stdout
    assert "origin in the session: https://git.example.invalid/org/r.git" in created.stdout
    assert "left out of the origin URL: credentials" in created.stderr
    assert TOKEN not in created.stdout + created.stderr

    assert git(paude, "remote", "get-url", f"paude-{name}").strip() == f"paude::{name}"
    assert in_agent(paude, "git -C /workspace rev-parse HEAD").strip() == head
    assert in_agent(paude, "cat /workspace/app.py") == "print('hi')\n"
    assert in_agent(paude, "git -C /workspace tag --list").split() == ["v1", "v1.1"]
    assert in_agent(paude, "git -C /workspace remote get-url origin").strip() == \
        "https://git.example.invalid/org/r.git"
    # The token is nowhere in the session's repository; the control: it is in the host's.
    assert TOKEN in (repo / ".git" / "config").read_text(encoding="utf-8")
    found = podman("exec", f"paude-{name}-agent", "grep", "-rl", TOKEN, "/workspace",
                   check=False)
    assert found.returncode == 1, found.stdout
