"""What of the user's identity enters the agent container."""

from __future__ import annotations

import stat
from pathlib import Path

from paude.credentials import AGENT_HOME, filter_gitconfig, gather, stage

GITCONFIG = """\
[user]
    name = Ada Lovelace
    email = ada@example.com
[credential]
    helper = store
[credential "https://github.com"]
    helper = !gh auth git-credential
[url "https://token@github.com/"]
    insteadOf = https://github.com/
[http]
    extraheader = AUTHORIZATION: bearer s3cr3t
[include]
    path = ~/.gitconfig.local
[core]
    sshCommand = ssh -i ~/.ssh/id_ed25519
    excludesFile = ~/.my-ignore
    autocrlf = input
[alias]
    co = checkout
"""


def home_with_everything(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".config" / "gcloud").mkdir(parents=True)
    (home / ".config/gcloud/application_default_credentials.json").write_text('{"t": 1}')
    (home / ".gitconfig").write_text(GITCONFIG)
    (home / ".my-ignore").write_text("*.log\n")
    (home / ".claude").mkdir()
    (home / ".claude" / "settings.json").write_text("{}")
    (home / ".claude.json").write_text("{}")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    (home / ".config" / "gh").mkdir()
    (home / ".config" / "gh" / "hosts.yml").write_text("oauth_token: gho_x")
    (home / ".git-credentials").write_text("https://u:tok@github.com")
    return home


def test_filter_drops_helpers_tokens_includes_and_ssh() -> None:
    text = filter_gitconfig(GITCONFIG, excludes="/home/paude/.config/git/ignore")
    for leaked in ("helper", "gh auth", "token@", "s3cr3t", "include", "sshCommand",
                   "~/.my-ignore"):
        assert leaked not in text, leaked
    assert "name = Ada Lovelace" in text and "email = ada@example.com" in text
    assert "co = checkout" in text and "autocrlf = input" in text
    assert "excludesFile = /home/paude/.config/git/ignore" in text


def test_gather_mounts_copies_and_nothing_else(tmp_path: Path) -> None:
    home = home_with_everything(tmp_path)
    env = {"ANTHROPIC_API_KEY": "sk-1", "GOOGLE_CLOUD_PROJECT": "p", "CLOUD_ML_REGION": "r",
           "HOME": str(home), "SSH_AUTH_SOCK": "/tmp/agent.sock", "GH_TOKEN": "gho_y"}
    identity = gather(home, env, tmp_path / "stage")
    targets = {f.target for f in identity.files}
    # No Google credential file: model credentials are the gateway's alone.
    assert targets == {f"{AGENT_HOME}/.gitconfig", f"{AGENT_HOME}/.config/git/ignore"}
    assert all(m.endswith(":ro") for m in identity.mounts())
    assert all(str(tmp_path / "stage") in m for m in identity.mounts())
    seed = f"{AGENT_HOME}/.paude-seed"
    staged = tmp_path / "claude-seed"
    assert identity.copies == ((str(staged / ".claude"), f"{seed}/.claude"),
                               (str(staged / ".claude.json"), f"{seed}/.claude.json"))
    assert identity.env == {"GOOGLE_CLOUD_PROJECT": "p", "CLOUD_ML_REGION": "r"}
    assert identity.secret_env == {}
    assert identity.gateway.anthropic == "sk-1"
    assert identity.gateway.anthropic_source == "ANTHROPIC_API_KEY"
    everything = repr(identity) + "".join(f.content for f in identity.files)
    for never in ("PRIVATE KEY", "gho_", "u:tok", "agent.sock", "sk-1"):
        assert never not in everything, never


def test_gather_with_an_empty_home_passes_nothing(tmp_path: Path) -> None:
    identity = gather(tmp_path, {}, tmp_path / "stage")
    assert identity.files == () and identity.copies == ()
    assert identity.env == {} and identity.secret_env == {}


def test_stage_writes_readable_copies_in_a_private_folder(tmp_path: Path) -> None:
    home = home_with_everything(tmp_path)
    identity = gather(home, {}, tmp_path / "stage")
    stage(identity)
    folder = tmp_path / "stage"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    staged = folder / "gitconfig"
    assert "Ada Lovelace" in staged.read_text()
    assert stat.S_IMODE(staged.stat().st_mode) == 0o644
    inode = staged.stat().st_ino
    (home / ".gitconfig").write_text("[user]\n\tname = Grace Hopper\n")
    stage(gather(home, {}, folder))
    # Rewritten in place: a running container's bind mount sees the new content.
    assert "Grace Hopper" in staged.read_text() and staged.stat().st_ino == inode
    assert not (folder / "application_default_credentials.json").exists()
    assert (tmp_path / "claude-seed" / ".claude" / "settings.json").read_text() == "{}"
