"""`paude plan --base REF` as a CI runner runs it: a real git repository with a base and a
head commit, the real CLI in a subprocess with only git on PATH (no podman, no pulumi), a
fresh HOME, no state and no secret; output compared with golden files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PAUDE = str(Path(sys.executable).parent / "paude")
GIT = shutil.which("git") or "git"
# Fixed identities and dates: the commits, and so the plans that name them, are the same
# on every run.
GIT_ENV = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
           "GIT_CONFIG_NOSYSTEM": "1"}


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


class Repo:
    """A repository with `main` (the base) and `pr` (the head) branches."""

    def __init__(self, root: Path, home: Path, bin_dir: Path) -> None:
        self.root, self.home, self.bin_dir = root, home, bin_dir

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"PATH": str(self.bin_dir), "HOME": str(self.home), "LANG": "C.UTF-8",
                **GIT_ENV, **(extra or {})}

    def git(self, *args: str) -> str:
        return subprocess.run([GIT, *args], cwd=self.root, env=self.env(), check=True,
                              capture_output=True, text=True).stdout

    def write(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def commit(self, files: dict[str, str], message: str,
               remove: tuple[str, ...] = ()) -> None:
        self.write(files)
        for name in remove:
            (self.root / name).unlink()
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def paude(self, *args: str, env: dict[str, str] | None = None) -> Run:
        done = subprocess.run([PAUDE, "plan", *args], cwd=self.root, env=self.env(env),
                              capture_output=True, text=True, timeout=120, check=False)
        return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # git alone: a plan against a base commit needs no podman, engine or cluster tool.
    (bin_dir / "git").symlink_to(GIT)
    home = tmp_path / "home"
    home.mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    made = Repo(root, home, bin_dir)
    made.git("init", "-q", "-b", "main")
    return made


def yaml_of(sessions: str) -> str:
    return "version: 1\nsessions:\n" + sessions


DEMO = "  demo:\n    allowed_domains: [default]\n"
CASES: dict[str, tuple[dict[str, str], dict[str, str], tuple[str, ...]]] = {
    "egress-widened": ({"paude.yaml": yaml_of(DEMO)},
                       {"paude.yaml": yaml_of("  demo:\n    allowed_domains: [default, "
                                              ".example.com]\n")}, ()),
    "yolo-on": ({"paude.yaml": yaml_of(DEMO)},
                {"paude.yaml": yaml_of(DEMO + "    yolo: true\n")}, ()),
    "image-change": ({"paude.yaml": yaml_of(DEMO + "    image:\n      packages: [make]\n")},
                     {"paude.yaml": yaml_of(DEMO + "    image:\n      packages: [make, gcc]\n"
                                            "      setup: pip install -r requirements.txt\n")},
                     ()),
    "dockerfile-context": (
        {"paude.yaml": yaml_of(DEMO + "    image:\n      dockerfile: build/Dockerfile\n"),
         "build/Dockerfile": "FROM docker.io/library/debian:bookworm-slim\nCOPY tool.sh /\n",
         "build/tool.sh": "echo one\n"},
        {"build/tool.sh": "echo two\n"}, ()),
    "workspace-replaced": (
        {"paude.yaml": yaml_of("  cluster:\n    backend: openshift\n    openshift:\n"
                               "      namespace: team-a\n      storage_class: standard\n")},
        {"paude.yaml": yaml_of("  cluster:\n    backend: openshift\n    openshift:\n"
                               "      namespace: team-a\n      storage_class: fast-ssd\n")},
        ()),
    "policy-newly-blocked": ({"paude.yaml": yaml_of(DEMO + "    yolo: true\n")},
                             {"paude.yaml": yaml_of("  demo:\n    allowed_domains: [all]\n"
                                                    "    yolo: true\n")}, ()),
    "limits-raised": ({"paude.yaml": yaml_of(DEMO)},
                      {"paude.yaml": yaml_of(DEMO + "    resources: {memory: 16Gi, cpus: 8}\n")},
                      ()),
    "session-added": ({"paude.yaml": yaml_of(DEMO)},
                      {"paude.yaml": yaml_of(DEMO + "  reviewer:\n    allowed_domains: "
                                             "[default, github]\n")}, ()),
    "session-removed": ({"paude.yaml": yaml_of(DEMO + "  old:\n    yolo: false\n")},
                        {"paude.yaml": yaml_of(DEMO)}, ()),
}
# What each case must say, whatever else changes in the wording around it.
EXPECT = {
    "egress-widened": ("egress-widened", "+ .example.com"),
    "yolo-on": ("yolo-toggled", "yolo turned ON"),
    "image-change": ("image-rebuilt", "Containerfile: +RUN"),
    "dockerfile-context": ("image-rebuilt", "build context changed"),
    "workspace-replaced": ("workspace-replaced", "EMPTY workspace"),
    "policy-newly-blocked": ("egress-unrestricted", "UNRESTRICTED"),
    "limits-raised": ("limits-raised", "16"),
    "session-added": ("new-session", "new session"),
    "session-removed": ("session-removed", "paude destroy old"),
}


def prepare(repo: Repo, case: str) -> None:
    base, head, remove = CASES[case]
    repo.commit(base, "base")
    repo.git("checkout", "-q", "-b", "pr")
    repo.commit(head, "head", remove)


def normalised(text: str, repo: Repo) -> str:
    # A Dockerfile's image tag hashes where the repository is: a new folder per test.
    text = re.sub(r"paude-userbase:[0-9a-f]{16}", "paude-userbase:<tag>", text)
    return text.replace(str(repo.root), "<repo>")


@pytest.mark.parametrize("case", sorted(CASES))
def test_pr_plan_says_what_changed(repo: Repo, case: str, golden: Any) -> None:
    prepare(repo, case)
    md = repo.paude("--all", "--base", "main", "--markdown", "--detailed-exitcode")
    js = repo.paude("--all", "--base", "main", "--json")
    blocked = case == "policy-newly-blocked"
    assert md.code == (1 if blocked else 2), md.stderr
    assert js.code == (1 if blocked else 0), js.stderr
    plans = json.loads(js.stdout)["plans"]
    kinds = {item["kind"] for p in plans for item in p["summary"]}
    text = json.dumps(plans)
    kind, words = EXPECT[case]
    assert kind in kinds, kinds
    assert words in text or words in md.stdout
    assert all(p["base"]["ref"] == "main" for p in plans)
    golden.check(f"baseplan/{case}.md", normalised(md.stdout, repo))
    golden.check(f"baseplan/{case}.json", normalised(js.stdout, repo))
    # Nothing was kept: no state, no engine download, no staged credentials.
    assert not (repo.home / ".paude" / "state").exists()
    assert not (repo.home / ".paude" / "engine").exists()


def test_an_unchanged_dockerfile_session_has_no_changes(repo: Repo) -> None:
    """The base side's files are read from a temporary folder: nothing of that folder may
    reach the image tags (they would differ on every plan)."""
    base, _, _ = CASES["dockerfile-context"]
    repo.commit(base, "base")
    repo.git("checkout", "-q", "-b", "pr")
    repo.commit({"README.md": "unrelated\n"}, "head")
    run = repo.paude("--all", "--base", "main", "--json", "--detailed-exitcode")
    assert run.code == 0, run.stdout + run.stderr
    plan = json.loads(run.stdout)["plans"][0]
    assert plan["has_changes"] is False and plan["counts"]["same"] == 10
    # Control: a change to the build context is seen.
    repo.commit({"build/tool.sh": "echo changed\n"}, "context")
    assert repo.paude("--all", "--base", "main", "--detailed-exitcode").code == 2


def test_policy_findings_new_against_the_base(repo: Repo) -> None:
    prepare(repo, "policy-newly-blocked")
    plan = json.loads(repo.paude("--all", "--base", "main", "--json").stdout)["plans"][0]
    blocking = [f for f in plan["policy"]["findings"] if f["level"] == "mandatory"]
    assert [f["rule"] for f in blocking] == ["yolo-unrestricted-egress"]
    assert blocking[0]["new"] is True
    # Control: the same definition on both sides is blocked, but not newly.
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "pr")
    again = json.loads(repo.paude("--all", "--base", "main", "--json").stdout)["plans"][0]
    assert [f["new"] for f in again["policy"]["findings"] if f["level"] == "mandatory"] == [False]
    assert again["has_changes"] is False


def test_one_session_and_text(repo: Repo) -> None:
    prepare(repo, "egress-widened")
    run = repo.paude("demo", "--base", "main")
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("Session demo (podman) against base main (")
    assert "+ .example.com" in run.stdout
    missing = repo.paude("nosuch", "--base", "main")
    assert missing.code != 0 and "no session nosuch" in missing.stderr


def test_auto_base_from_the_ci_variables(repo: Repo) -> None:
    prepare(repo, "yolo-on")
    run = repo.paude("--all", "--base", "auto", "--json", env={"GITHUB_BASE_REF": "main"})
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["plans"][0]["base"]["ref"] == "main"
    gitlab = repo.paude("--all", "--base", "auto", "--json", env={
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": repo.git("rev-parse", "main").strip()})
    assert gitlab.code == 0, gitlab.stderr
    kinds = [i["kind"] for i in json.loads(gitlab.stdout)["plans"][0]["summary"]]
    assert "yolo-toggled" in kinds


def test_auto_in_a_clone_as_ci_checks_it_out(repo: Repo, tmp_path: Path) -> None:
    """A CI checkout: a clone, on the pull request's merge commit, with origin's branches."""
    prepare(repo, "egress-widened")
    repo.git("checkout", "-q", "main")  # origin's default branch, as a forge has it
    clone = Repo(tmp_path / "clone", repo.home, repo.bin_dir)
    subprocess.run([GIT, "clone", "-q", str(repo.root), str(clone.root)], env=repo.env(),
                   check=True)
    clone.git("checkout", "-q", "--detach", "origin/main")
    clone.git("merge", "-q", "--no-ff", "-m", "Merge pr into main", "origin/pr")
    github = clone.paude("--all", "--base", "auto", "--json", env={"GITHUB_BASE_REF": "main"})
    assert github.code == 0, github.stderr
    [plan] = json.loads(github.stdout)["plans"]
    assert plan["base"]["ref"] == "origin/main"
    assert "egress-widened" in [i["kind"] for i in plan["summary"]]
    # No CI variables: where HEAD left origin's default branch.
    local = clone.paude("--all", "--base", "auto", "--json")
    assert local.code == 0, local.stderr
    assert json.loads(local.stdout)["plans"][0]["base"]["ref"] == "merge-base HEAD origin/main"


@pytest.mark.parametrize("side", ["base", "head"])
def test_a_broken_definition_names_its_side_file_and_line(repo: Repo, side: str) -> None:
    broken = yaml_of(DEMO + "    yolo: maybe\n")
    repo.commit({"paude.yaml": broken if side == "base" else yaml_of(DEMO)}, "base")
    repo.git("checkout", "-q", "-b", "pr")
    repo.commit({"paude.yaml": yaml_of(DEMO) if side == "base" else broken}, "head")
    run = repo.paude("--all", "--base", "main", "--markdown")
    assert run.code == 1
    where = "base main (" if side == "base" else "working tree"
    assert f"{where}" in run.stderr and "paude.yaml:5" in run.stderr, run.stderr
    assert "sessions.demo.yolo" in run.stderr


@pytest.mark.parametrize("ref", ["--output=/tmp/pwned", "-h", "main:paude.yaml", "main..pr",
                                 "a b", "main\nHEAD"])
def test_a_base_that_is_not_a_ref_is_refused(repo: Repo, ref: str) -> None:
    prepare(repo, "yolo-on")
    run = repo.paude("--all", f"--base={ref}", "--json")
    assert run.code == 1
    assert "is not a git ref" in run.stderr, run.stderr
    assert not Path("/tmp/pwned").exists()
    # Control: a real ref works from the same repository.
    assert repo.paude("--all", "--base=main", "--json").code == 0


def test_a_base_symlink_out_of_the_repository_is_refused(repo: Repo, tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text(yaml_of(DEMO), encoding="utf-8")
    repo.commit({"README": "x\n"}, "base")
    (repo.root / "paude.yaml").symlink_to(secret)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "link")
    repo.git("checkout", "-q", "-b", "pr")
    (repo.root / "paude.yaml").unlink()
    repo.commit({"paude.yaml": yaml_of(DEMO)}, "head")
    run = repo.paude("--all", "--base", "main", "--json")
    assert run.code == 1
    assert "base main (" in run.stderr and "outside the repository" in run.stderr, run.stderr
    # Control: the base without the link plans.
    assert repo.paude("--all", "--base", "main~1", "--json").code == 0


def test_a_base_definition_linked_inside_the_repository_is_read(repo: Repo) -> None:
    repo.commit({"config/paude.yaml": yaml_of(DEMO)}, "base")
    (repo.root / "paude.yaml").symlink_to("config/paude.yaml")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "link")
    repo.git("checkout", "-q", "-b", "pr")
    repo.commit({"config/paude.yaml": yaml_of(DEMO + "    yolo: true\n")}, "head")
    run = repo.paude("--all", "--base", "main", "--json")
    assert run.code == 0, run.stderr
    kinds = [i["kind"] for i in json.loads(run.stdout)["plans"][0]["summary"]]
    assert "yolo-toggled" in kinds and "new-session" not in kinds


def test_no_engine_podman_or_secret_is_needed(repo: Repo) -> None:
    prepare(repo, "egress-widened")
    assert sorted(os.listdir(repo.bin_dir)) == ["git"]
    run = repo.paude("--all", "--base", "main", "--markdown")
    assert run.code == 0, run.stderr
    assert "PULUMI" not in run.stderr and "podman" not in run.stderr.lower()
