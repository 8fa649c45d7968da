"""paude-policy.yaml (the repository's, data only) and the organisation's policy.yaml:
generated and mutated files are accepted or refused with a ConfigError naming the file; no
repository file adds code or lowers a mandatory rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from paude import policy
from paude.errors import ConfigError
from paude.policies.rules import BUILTIN
from tests.fuzz import strategies as fz
from tests.fuzz.harness import bounded, fuzz, ran, readable
from tests.fuzz.world import World, world

# Hypothesis warns when it describes the big generated documents; that is expected.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

__all__ = ["world"]

RULE_IDS = [r.id for r in BUILTIN]
MANDATORY = {r.id for r in BUILTIN if r.level == "mandatory"}
levels = st.sampled_from(["mandatory", "advisory", "disabled"])
# Where a custom rule's check may point: the organisation's own file, code inside the
# repository (refused), an installed module, and names that do not exist.
CHECKS = ["checks.py:rule", "checks.py:missing", "../repo/evil.py:rule", "{repo}/evil.py:rule",
          "paude.policies.rules:check_claim_size", "nosuchmodule_fz:rule", "os:system",
          "checks.py", ":rule", "checks.py:rule; rm -rf /", "/dev/null:rule"]
custom_rules = st.lists(fz.optional_fields({
    "id": st.one_of(fz.names, st.sampled_from(RULE_IDS)), "level": levels,
    "description": st.sampled_from(["guards x", ""]), "fix": st.sampled_from(["do y", ""]),
    "check": st.sampled_from(CHECKS)}), max_size=2)
policy_documents = fz.optional_fields({
    "version": st.just(1),
    "rules": st.dictionaries(fz.rarely(fz.sharp_text(), st.sampled_from(RULE_IDS), 8),
                             fz.optional_fields({"level": levels, "max_size": fz.quantities}),
                             max_size=4),
})


def _write(path: Path, doc: Any, style: int, world: World) -> str:
    text = fz.as_yaml(doc, style).replace("{repo}", str(world.root))
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return text


def check_policies(world: World, repo_doc: bytes | None, org_doc: bytes | None) -> bool:
    """Load the policy files of the world's repository; True when accepted."""
    repo_file, org_file = world.root / policy.POLICY_FILE, world.home / policy.HOME_POLICY_FILE
    for path, data in ((repo_file, repo_doc), (org_file, org_doc)):
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)
    (world.home / "checks.py").write_text("def rule(resources):\n    return []\n")
    (world.root / "evil.py").write_text("def rule(resources):\n    return []\n")
    try:
        with bounded("loading the policy files"):
            config = policy.load(world.root, world.home)
    except ConfigError as exc:
        readable(exc)
        assert "policy" in exc.render() or "custom_rules" in exc.render(), exc.render()
        return False
    # The repository's file cannot turn a mandatory rule off or down, nor add code.
    for rule in MANDATORY:
        assert config.levels.get(rule, "mandatory") == "mandatory", rule
    for custom in config.custom:
        assert custom.path is None or not Path(custom.path).resolve().is_relative_to(
            world.root.resolve()), custom
    if repo_doc is not None:
        loaded = _safe(repo_doc)
        assert not (isinstance(loaded, dict) and "custom_rules" in loaded)
    return True


def _safe(data: bytes) -> Any:
    try:
        return yaml.safe_load(data)
    except (yaml.YAMLError, UnicodeDecodeError):
        return None


@fuzz("policy file structured")
@given(repo=st.one_of(st.none(), policy_documents,
                      st.builds(lambda d, c: {**d, "custom_rules": c}, policy_documents,
                                custom_rules)),
       org=st.one_of(st.none(), st.builds(lambda d, c: {**d, "custom_rules": c},
                                          policy_documents, custom_rules)),
       style=st.integers(0, 3))
def test_structured_policy_files(world: World, repo: Any, org: Any, style: int) -> None:
    repo_text = _write(world.root / "x.yaml", repo, style, world) if repo is not None else None
    org_text = _write(world.home / "x.yaml", org, style, world) if org is not None else None

    def encode(text: str | None) -> bytes | None:
        return None if text is None else text.encode("utf-8", "surrogatepass")

    accepted = check_policies(world, encode(repo_text), encode(org_text))
    ran("policy file structured", accepted=accepted)


SEED_POLICY = [
    "version: 1\nrules:\n  pvc-size-limit: {level: mandatory, max_size: 50Gi}\n",
    "rules:\n  base-image-pinned:\n    level: disabled\n  allowlist-wider-than-default:\n"
    "    level: mandatory\n",
    "version: 1\nrules: {}\ncustom_rules:\n  - id: x\n    level: advisory\n"
    "    description: d\n    fix: f\n    check: checks.py:rule\n",
]


@fuzz("policy file text mutations")
@given(text=fz.mutated_text(SEED_POLICY), where=st.sampled_from(["repository", "organisation"]))
def test_policy_text_mutations(world: World, text: str, where: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    accepted = check_policies(world, data if where == "repository" else None,
                              data if where == "organisation" else None)
    ran("policy file text mutations", accepted=accepted)
