"""What of ~/.claude and ~/.claude.json enters the agent, and the model credentials' checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paude import gateway
from paude.claude_home import filter_claude_json, gather, project_dir_name, stage
from paude.domains import expand
from paude.errors import PaudeError

REPO = "/home/ada/src/my.project"


def claude_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    root = home / ".claude"
    (root / "commands").mkdir(parents=True)
    (root / "settings.json").write_text('{"theme": "dark"}')
    (root / "CLAUDE.md").write_text("be brief")
    (root / "commands" / "review.md").write_text("review it")
    (root / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "sk-ant-oat"}}')
    (root / "history.jsonl").write_text('{"display": "other project prompt"}')
    (root / "todos").mkdir()
    (root / "todos" / "t.json").write_text("[]")
    own = root / "projects" / project_dir_name(REPO)
    own.mkdir(parents=True)
    (own / "s1.jsonl").write_text("this project's transcript")
    other = root / "projects" / project_dir_name("/home/ada/src/secret-work")
    other.mkdir(parents=True)
    (other / "s2.jsonl").write_text("SECRET other transcript")
    (root / "agents").symlink_to(home / "elsewhere")
    (home / "elsewhere").mkdir()
    (home / "elsewhere" / "x.md").write_text("outside")
    (home / ".claude.json").write_text(json.dumps({
        "numStartups": 3, "theme": "dark", "hasCompletedOnboarding": True,
        "oauthAccount": {"emailAddress": "ada@example.com", "accountUuid": "u"},
        "primaryApiKey": "sk-ant-api-stored", "customApiKeyResponses": {"approved": ["x"]},
        "mcpServers": {"gh": {"env": {"GITHUB_TOKEN": "ghp_mcp"}}},
        "projects": {REPO: {"allowedTools": ["Bash"], "hasTrustDialogAccepted": True,
                            "mcpServers": {"db": {"headers": {"X": "bearer-db"}}}},
                     "/home/ada/src/secret-work": {"allowedTools": ["SECRET"]}},
    }))
    return home


def test_only_settings_and_this_projects_history_are_copied(tmp_path: Path) -> None:
    home = claude_home(tmp_path)
    seed = gather(home, Path(REPO))
    copied = sorted(rel for rel, _ in seed.files)
    assert copied == ["CLAUDE.md", "commands/review.md", "projects/-workspace/s1.jsonl",
                      "settings.json"]
    assert seed.describe() == [
        "~/.claude/CLAUDE.md", "~/.claude/commands",
        "~/.claude/projects (this repository's history only)",
        "~/.claude/settings.json",
        "~/.claude.json (filtered: no account, tokens, MCP servers or other projects)"]
    staged = stage(seed, tmp_path / "seed")
    assert staged == [(str(tmp_path / "seed" / ".claude"), ".claude"),
                      (str(tmp_path / "seed" / ".claude.json"), ".claude.json")]
    text = "".join(p.read_text() for p in (tmp_path / "seed").rglob("*") if p.is_file())
    for never in ("sk-ant-oat", "other project prompt", "SECRET", "outside", "sk-ant-api",
                  "ghp_mcp", "bearer-db", "ada@example.com"):
        assert never not in text, never
    # Control: what should be there is.
    assert "this project's transcript" in text and "be brief" in text


def test_claude_json_keeps_preferences_and_this_project_as_workspace() -> None:
    home_json = json.dumps({"numStartups": 3, "oauthAccount": {"a": 1}, "userID": "id",
                            "projects": {REPO: {"hasTrustDialogAccepted": True},
                                         "/other": {"x": 1}}})
    data = json.loads(filter_claude_json(home_json, REPO))
    assert data == {"numStartups": 3, "userID": "id",
                    "projects": {"/workspace": {"hasTrustDialogAccepted": True}}}
    assert json.loads(filter_claude_json("not json", REPO)) == {}


def test_restaging_removes_what_is_no_longer_copied(tmp_path: Path) -> None:
    home = claude_home(tmp_path)
    stage(gather(home, Path(REPO)), tmp_path / "seed")
    (home / ".claude" / "CLAUDE.md").unlink()
    stage(gather(home, Path(REPO)), tmp_path / "seed")
    assert not (tmp_path / "seed" / ".claude" / "CLAUDE.md").exists()


# ---------------------------------------------------------------- model credentials


ADC = {"type": "authorized_user", "client_id": "c", "client_secret": "s",
       "refresh_token": "r"}


def creds(tmp_path: Path, env: dict[str, str], adc: object = None) -> gateway.GatewayCredentials:
    if adc is not None:
        path = tmp_path / "adc.json"
        path.write_text(adc if isinstance(adc, str) else json.dumps(adc))
        env = {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(path)}
    return gateway.gather(tmp_path, env)


@pytest.mark.parametrize(("var", "mode"), gateway.ANTHROPIC_VARS)
def test_each_anthropic_variable_is_a_gateway_credential(tmp_path: Path, var: str,
                                                         mode: str) -> None:
    found = creds(tmp_path, {var: "secret-value-1"})
    assert (found.anthropic, found.anthropic_mode, found.anthropic_source) == (
        "secret-value-1", mode, var)
    assert found.secret_env() == {"PAUDE_GATEWAY_ANTHROPIC_CREDENTIAL": "secret-value-1"}
    assert "secret-value-1" not in repr(found)
    gateway.check(found, needs_model=True, allow=expand(["default"]))


def test_google_credentials_enter_the_gateway_only_with_vertex(tmp_path: Path) -> None:
    assert creds(tmp_path, {}, ADC).google == ""
    found = creds(tmp_path, {"CLAUDE_CODE_USE_VERTEX": "1",
                             "ANTHROPIC_VERTEX_PROJECT_ID": "proj-1"}, ADC)
    assert json.loads(found.google) == ADC and found.vertex_project == "proj-1"
    gateway.check(found, needs_model=True, allow=expand(["default"]))


@pytest.mark.parametrize(("env", "adc", "message", "hint"), [
    ({}, None, "no model credential", "CLAUDE_CODE_OAUTH_TOKEN"),
    ({"CLAUDE_CODE_USE_VERTEX": "1"}, None, "no Google credentials were found",
     "gcloud auth application-default login"),
    ({"CLAUDE_CODE_USE_VERTEX": "1"}, "{not json", "is not JSON", "GOOGLE_APPLICATION"),
    ({"CLAUDE_CODE_USE_VERTEX": "1"}, {"type": "external_account"}, "'external_account' is not",
     "service-account"),
    ({"CLAUDE_CODE_USE_VERTEX": "1"}, {"type": "authorized_user"}, "lacks client_id",
     "gcloud"),
    ({"CLAUDE_CODE_USE_VERTEX": "1"}, ADC, "no Vertex AI project", "ANTHROPIC_VERTEX_PROJECT_ID"),
])
def test_unusable_credentials_are_plan_errors_naming_the_fix(
        tmp_path: Path, env: dict[str, str], adc: object, message: str, hint: str) -> None:
    with pytest.raises(PaudeError) as caught:
        gateway.check(creds(tmp_path, env, adc), needs_model=True, allow=expand(["default"]))
    assert message in caught.value.message
    assert hint in (caught.value.hint or "") + caught.value.message


def test_a_missing_route_is_an_error_and_a_stand_in_agent_needs_nothing(tmp_path: Path) -> None:
    with pytest.raises(PaudeError, match="no 'claude'"):
        gateway.check(creds(tmp_path, {"ANTHROPIC_API_KEY": "k"}), needs_model=True,
                      allow=expand(["pypi"]))
    gateway.check(creds(tmp_path, {}), needs_model=False, allow=expand(["default"]))
    gateway.check(creds(tmp_path, {"ANTHROPIC_API_KEY": "k"}), needs_model=False,
                  allow=expand(["pypi"]))
