"""Policy files (validation, resolution, loading), the launcher the engine runs, the pack's
adapters around the rules, and how paude reads a policy event back."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import (
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
    unknown_checking_proxy,
)
from pydantic import ValidationError

from paude import forkserver
from paude.engine import _finding
from paude.errors import ConfigError
from paude.policies import pack
from paude.policies.resources import Resource, Violation
from paude.policies.rules import BUILTIN, BY_ID
from paude.policies.settings import (
    PackConfig,
    PolicyFile,
    RepoPolicyFile,
    ResolvedCustom,
    resolve,
)
from paude.policy import HOME_POLICY_FILE, POLICY_FILE, launcher, load, policy_files
from paude.results import PolicyFinding

VOLUME = "pulumi-python:dynamic/podman:Volume"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"


def custom(rule_id: str = "org-rule", check: str = "checks/org.py:check",
           level: str = "advisory") -> dict[str, Any]:
    return {"id": rule_id, "level": level, "description": "Org rule.", "fix": "do the thing",
            "check": check}


def invalid(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        PolicyFile.model_validate(data)
    return str(caught.value)


# ---------------------------------------------------------------- PolicyFile


def test_empty_file_changes_nothing() -> None:
    file = PolicyFile.model_validate({})
    assert (file.version, file.rules, file.custom_rules) == (1, {}, [])


def test_unknown_rule_id_is_refused_with_the_known_ones() -> None:
    text = invalid({"rules": {"no-such-rule": {"level": "advisory"}}})
    assert "rules.no-such-rule: no built-in rule has this id" in text
    assert "pvc-size-limit" in text and "custom_rules" in text


@pytest.mark.parametrize("rule_id", [r.id for r in BUILTIN if r.level == "mandatory"])
@pytest.mark.parametrize("level", ["advisory", "disabled"])
def test_a_mandatory_rule_cannot_be_lowered(rule_id: str, level: str) -> None:
    assert (f"rules.{rule_id}: {rule_id} is a mandatory rule and cannot be set to {level}"
            in invalid({"rules": {rule_id: {"level": level}}}))


def test_levels_a_file_may_set() -> None:
    file = PolicyFile.model_validate({"rules": {
        "workspace-protected": {"level": "mandatory"},
        "yolo-unrestricted-egress": {},
        "base-image-pinned": {"level": "mandatory"},
        "allowlist-wider-than-default": {"level": "disabled"}}})
    assert {k: v.level for k, v in file.rules.items()} == {
        "workspace-protected": "mandatory", "yolo-unrestricted-egress": None,
        "base-image-pinned": "mandatory", "allowlist-wider-than-default": "disabled"}
    assert "rules.base-image-pinned.level" in invalid(
        {"rules": {"base-image-pinned": {"level": "strict"}}})


def test_max_size_only_for_the_claim_size_rule() -> None:
    assert PolicyFile.model_validate(
        {"rules": {"pvc-size-limit": {"max_size": "50Gi"}}}).rules["pvc-size-limit"].max_size \
        == "50Gi"
    assert "rules.base-image-pinned: max_size applies only to pvc-size-limit" in invalid(
        {"rules": {"base-image-pinned": {"max_size": "50Gi"}}})


def test_max_size_must_be_a_quantity() -> None:
    for bad in ("lots", "50GB", "-1Gi"):
        assert f"{bad!r} is not a storage quantity" in invalid(
            {"rules": {"pvc-size-limit": {"max_size": bad}}})


def test_a_bad_max_size_says_where_it_is() -> None:
    assert "rules.pvc-size-limit" in invalid({"rules": {"pvc-size-limit": {"max_size": "lots"}}})


def test_duplicate_custom_ids_are_refused() -> None:
    assert "custom_rules: the id org-rule is already taken" in invalid(
        {"custom_rules": [custom(), custom(check="other.py:check")]})


def test_custom_id_may_not_reuse_a_built_in_one() -> None:
    assert "custom_rules: the id workspace-protected is already taken" in invalid(
        {"custom_rules": [custom("workspace-protected")]})


@pytest.mark.parametrize("check", ["checks.py", "checks.py:", ":check", "checks.py:1check",
                                   "checks.py:check-it", "checks.py:check:more",
                                   "a:b.py:check", "org-rules:check", "org.:check",
                                   ".org:check", "1org:check", "org..rules:check"])
def test_bad_check_syntax(check: str) -> None:
    assert "custom_rules.0.check\n  String should match pattern" in invalid(
        {"custom_rules": [custom(check=check)]})


@pytest.mark.parametrize(("field", "value"), [
    ("id", "Org_Rule"), ("id", ""), ("level", "disabled"), ("description", ""), ("fix", "")])
def test_bad_custom_rule_fields(field: str, value: str) -> None:
    assert f"custom_rules.0.{field}\n" in invalid({"custom_rules": [{**custom(), field: value}]})


@pytest.mark.parametrize("check", ["org.py:check", "checks/org.py:check", "/etc/org.py:check",
                                   "org_rules:check", "acme.paude.rules:no_github"])
def test_good_check_syntax(check: str) -> None:
    [rule] = PolicyFile.model_validate({"custom_rules": [custom(check=check)]}).custom_rules
    assert rule.check == check


def test_the_repository_file_has_no_custom_rules() -> None:
    assert "custom_rules" not in RepoPolicyFile.model_fields
    assert set(PolicyFile.model_fields) == {*RepoPolicyFile.model_fields, "custom_rules"}
    with pytest.raises(ValidationError, match="custom_rules\n  Extra inputs"):
        RepoPolicyFile.model_validate({"custom_rules": [custom()]})
    # The same rules section is checked the same way in both.
    with pytest.raises(ValidationError, match="no built-in rule has this id"):
        RepoPolicyFile.model_validate({"rules": {"no-such-rule": {}}})


def test_unknown_keys_and_versions_are_refused() -> None:
    assert "rule\n  Extra inputs are not permitted" in invalid({"rule": {}})
    assert "version" in invalid({"version": 2})
    assert "rules.pvc-size-limit.limit\n  Extra inputs are not permitted" in invalid(
        {"rules": {"pvc-size-limit": {"limit": "1Gi"}}})


# ---------------------------------------------------------------- resolve()


def test_resolve_without_files_is_the_built_in_defaults() -> None:
    config = resolve([])
    assert config.levels == {r.id: r.level for r in BUILTIN}
    assert config.params == {"pvc-size-limit": {"max_size": "100Gi"}}
    assert (config.custom, config.sources) == ([], [])


def test_resolve_two_files_strictest_level_and_lowest_limit_win() -> None:
    home = PolicyFile.model_validate({
        "rules": {"base-image-pinned": {"level": "mandatory"},
                  "allowlist-wider-than-default": {"level": "disabled"},
                  "pvc-size-limit": {"max_size": "60G"}},
        "custom_rules": [custom("home-rule", "home.py:check", "mandatory")]})
    repo = RepoPolicyFile.model_validate({
        "rules": {"base-image-pinned": {"level": "disabled"},
                  "pvc-size-limit": {"level": "mandatory", "max_size": "50Gi"}}})
    config = resolve([("/etc/paude", home), ("/src/project", repo)], ["/src/project"])
    assert config.levels == {**{r.id: r.level for r in BUILTIN},
                             "base-image-pinned": "mandatory",
                             "allowlist-wider-than-default": "disabled",
                             "pvc-size-limit": "mandatory"}
    # 50Gi (53.7 GB) is below 60G: the lowest limit wins whatever its unit.
    assert config.params == {"pvc-size-limit": {"max_size": "50Gi"}}
    assert [(c.id, c.level, c.path, c.function) for c in config.custom] == [
        ("home-rule", "mandatory", "/etc/paude/home.py", "check")]
    assert config.sources == ["/etc/paude", "/src/project"]
    assert config.untrusted == ["/src/project"]
    # The built-in table is untouched by a resolution.
    assert BY_ID["pvc-size-limit"].params == {"max_size": "100Gi"}


def test_resolve_a_later_file_cannot_lower_an_earlier_level() -> None:
    strict = PolicyFile.model_validate({"rules": {"pvc-size-limit": {"level": "mandatory"}}})
    lax = PolicyFile.model_validate({"rules": {"pvc-size-limit": {"level": "disabled"}}})
    for files in ([("/a", strict), ("/b", lax)], [("/b", lax), ("/a", strict)]):
        assert resolve(files).levels["pvc-size-limit"] == "mandatory"


def test_resolve_a_module_check() -> None:
    file = PolicyFile.model_validate({"custom_rules": [custom(check="acme.rules:verify")]})
    [rule] = resolve([("/etc/paude", file)]).custom
    assert (rule.path, rule.module, rule.function) == (None, "acme.rules", "verify")
    assert rule.source == "module acme.rules"


def test_a_resolved_rule_has_exactly_one_source() -> None:
    base = {"id": "r", "level": "advisory", "description": "d", "fix": "f", "function": "c"}
    for bad in ({}, {"path": "/a.py", "module": "a"}):
        with pytest.raises(ValidationError, match="either a check file or a module"):
            ResolvedCustom.model_validate({**base, **bad})


def test_resolve_refuses_a_custom_rule_defined_twice() -> None:
    one = PolicyFile.model_validate({"custom_rules": [custom()]})
    with pytest.raises(ValueError, match="custom rule org-rule is defined by more than one"):
        resolve([("/a", one), ("/b", one)])


def test_resolved_configuration_round_trips_through_json() -> None:
    file = PolicyFile.model_validate({"rules": {"pvc-size-limit": {"max_size": "5Gi"}},
                                      "custom_rules": [custom()]})
    config = resolve([("/org", file)])
    assert PackConfig.model_validate_json(config.model_dump_json()) == config


# ---------------------------------------------------------------- paude.policy.load()

CHECK_SOURCE = """\
raise SystemExit("paude imported the organisation's check while validating it")


def check(resources):
    return []
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository folder, with PAUDE_HOME pointing at a fresh folder beside it."""
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "repo").mkdir()
    return tmp_path / "repo"


def home_file(repo: Path) -> Path:
    return repo.parent / "home" / HOME_POLICY_FILE


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(repo: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(repo)
    return caught.value


def test_load_without_policy_files_is_the_defaults(repo: Path) -> None:
    assert policy_files(repo) == []
    assert load(repo) == resolve([], [str(repo.resolve())])


def test_load_combines_paude_home_and_repository_files(repo: Path) -> None:
    home = write(home_file(repo), "rules:\n  pvc-size-limit:\n    max_size: 20Gi\n")
    write(home.parent / "org.py", CHECK_SOURCE)
    write(home, home.read_text() + "custom_rules:\n  - id: org-rule\n    level: mandatory\n"
          "    description: Org rule.\n    fix: ask the platform team\n"
          "    check: org.py:check\n")
    local = write(repo / POLICY_FILE, "version: 1\nrules:\n  pvc-size-limit:\n"
                  "    max_size: 80Gi\n  base-image-pinned:\n    level: mandatory\n")
    assert policy_files(repo) == [home, local]
    config = load(repo)
    assert config.levels["base-image-pinned"] == "mandatory"
    assert config.params["pvc-size-limit"] == {"max_size": "20Gi"}
    assert [(c.id, c.level, c.path) for c in config.custom] == [
        ("org-rule", "mandatory", str(home.parent.resolve() / "org.py"))]
    assert config.sources == [str(home.parent.resolve()), str(repo.resolve())]
    assert config.untrusted == [str(repo.resolve())]


def test_load_reports_the_file_and_line_of_a_field(repo: Path) -> None:
    path = write(repo / POLICY_FILE, "version: 1\nrules:\n  pvc-size-limit:\n"
                 "    level: strict\n")
    error = load_error(repo)
    assert error.file == str(path)
    [problem] = error.problems
    assert (problem.path, problem.line) == ("rules.pvc-size-limit.level", 4)
    assert f"{path}:4: rules.pvc-size-limit.level" in str(error)


def test_load_reports_a_lowered_mandatory_rule_with_its_file(repo: Path) -> None:
    path = write(home_file(repo), "rules:\n  workspace-protected:\n    level: advisory\n")
    error = load_error(repo)
    assert error.file == str(path)
    [problem] = error.problems
    assert problem.line is not None
    assert "workspace-protected is a mandatory rule and cannot be set to advisory" \
        in problem.message


def test_load_reports_yaml_syntax_and_duplicate_keys_with_lines(repo: Path) -> None:
    write(repo / POLICY_FILE, "rules:\n  pvc-size-limit: {level: [\n")
    [problem] = load_error(repo).problems
    assert problem.line is not None and "YAML syntax" in problem.message
    write(repo / POLICY_FILE, "rules:\n  pvc-size-limit: {}\n  pvc-size-limit: {}\n")
    [problem] = load_error(repo).problems
    assert (problem.path, problem.line) == ("rules.pvc-size-limit", 3)


def custom_file(repo: Path, check: str) -> Path:
    """The organisation's file (in PAUDE_HOME) with one custom rule."""
    return write(home_file(repo), "custom_rules:\n  - id: org-rule\n    level: advisory\n"
                 "    description: Org rule.\n    fix: ask the platform team\n"
                 f"    check: {check}\n")


def test_custom_check_is_validated_without_importing_it(repo: Path) -> None:
    org = write(home_file(repo).parent / "policy" / "org.py", CHECK_SOURCE)
    custom_file(repo, "policy/org.py:check")
    [rule] = load(repo).custom  # the check's top-level SystemExit never ran
    assert (rule.path, rule.function) == (str(org.parent.resolve() / "org.py"), "check")


@pytest.mark.parametrize(("check", "words"), [
    ("missing.py:check", "does not exist"),
    ("policy/org.py:verify", "defines no function verify"),
    ("policy/org.py:nested", "defines no function nested"),
    ("policy/broken.py:check", "cannot be read as Python"),
])
def test_custom_check_that_cannot_run_is_refused(repo: Path, check: str, words: str) -> None:
    folder = home_file(repo).parent / "policy"
    write(folder / "org.py", CHECK_SOURCE + "\n\nclass Holder:\n"
          "    def nested(self):\n        return []\n")
    write(folder / "broken.py", "raise SystemExit(1)\ndef check(:\n")
    path = custom_file(repo, check)
    error = load_error(repo)
    assert error.file == str(path)
    [problem] = error.problems
    assert problem.path == "custom_rules.0.check" and words in problem.message
    assert problem.line == 6 and f"{path}:6: custom_rules.0.check" in str(error)
    assert "FILE.py:FUNCTION" in (error.hint or "")


def test_absolute_check_path_resolves_to_the_file_that_was_validated(repo: Path) -> None:
    check = write(repo.parent / "org-checks" / "org.py", CHECK_SOURCE)
    custom_file(repo, f"{check}:check")
    config = load(repo)
    assert Path(config.custom[0].path or "").resolve() == check.resolve()


# ---------------------------------------------------------------- the launcher


def test_launcher_names_this_python_and_the_configuration(tmp_path: Path) -> None:
    config = resolve([])
    exe = launcher(config, tmp_path)
    assert exe.name == "paude-policy-pack" and exe.parent.parent == tmp_path / "policy"
    assert os.access(exe, os.X_OK)
    script = exe.read_text(encoding="utf-8")
    conf = exe.parent / "config.json"
    assert script.startswith("#!/bin/sh\n")
    assert f"PAUDE_POLICY_CONFIG={shlex.quote(str(conf))}\nexport PAUDE_POLICY_CONFIG\n" in script
    # -P: the engine's working directory is never put in front of sys.path.
    command = f"{shlex.quote(sys.executable)} -u -P -m paude.policies \"$@\""
    assert script.endswith(f"\nexec {command}\n")
    # With a fork server, the same command line goes through the shim (which runs it as it
    # is when the server declines or is gone).
    shim = " ".join(shlex.quote(a) for a in forkserver.shim_command(sys.executable))
    assert f'if [ -n "${{PAUDE_FORKSERVER:-}}" ]; then exec {shim} {command}; fi\n' in script
    assert PackConfig.model_validate_json(conf.read_text(encoding="utf-8")) == config


def test_launcher_is_reused_for_the_same_configuration(tmp_path: Path) -> None:
    exe = launcher(resolve([]), tmp_path)
    before = exe.stat().st_mtime_ns, (exe.parent / "config.json").stat().st_mtime_ns
    os.utime(exe, ns=(1, 1))
    os.utime(exe.parent / "config.json", ns=(1, 1))
    assert launcher(resolve([]), tmp_path) == exe
    # Not rewritten: the files still carry the times set above.
    assert (exe.stat().st_mtime_ns, (exe.parent / "config.json").stat().st_mtime_ns) == (1, 1)
    assert before != (1, 1)


def test_a_changed_launcher_is_rewritten(tmp_path: Path) -> None:
    """An older paude's launcher, or one anything else edited, is never run as it is."""
    exe = launcher(resolve([]), tmp_path)
    script = exe.read_text()
    exe.write_text("#!/bin/sh\ntouch pwned\n")
    (exe.parent / "config.json").write_text("{}")
    assert launcher(resolve([]), tmp_path) == exe
    assert exe.read_text() == script and os.access(exe, os.X_OK)
    assert PackConfig.model_validate_json((exe.parent / "config.json").read_text()) \
        == resolve([])
    assert [p.name for p in exe.parent.iterdir() if p.name.startswith(".")] == []


def test_launcher_differs_for_a_different_configuration(tmp_path: Path) -> None:
    tighter = resolve([("/org", PolicyFile.model_validate(
        {"rules": {"pvc-size-limit": {"max_size": "5Gi"}}}))])
    first, second = launcher(resolve([]), tmp_path), launcher(tighter, tmp_path)
    assert first != second and first.is_file() and second.is_file()
    assert '"5Gi"' in (second.parent / "config.json").read_text()


def test_launcher_defaults_to_paude_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    assert launcher(resolve([])).is_relative_to(tmp_path / "home" / "policy")


# ---------------------------------------------------------------- the pack

CUSTOM_SOURCE = """\
from paude.policies.resources import Violation


def check(resources):
    yield "the session has no owner label"
    for res in resources:
        if res.name == "agent":
            yield res, "the agent runs as root"
            yield Violation("the agent has no memory limit", res)


def nothing(resources):
    return None
"""


def resolved_custom(path: Path, function: str = "check",
                    level: str = "advisory") -> ResolvedCustom:
    return ResolvedCustom(id="org-rule", level=level, description="Org rule.",
                          fix="ask the platform team", path=str(path), function=function)


def test_load_custom_adapts_what_the_check_yields(tmp_path: Path) -> None:
    source = write(tmp_path / "org.py", CUSTOM_SOURCE)
    agent = Resource("pulumi-python:dynamic/podman:Container", "agent", {})
    found = list(pack.load_custom(resolved_custom(source))([agent], {}))
    assert found == [Violation("the session has no owner label", None),
                     Violation("the agent runs as root", agent),
                     Violation("the agent has no memory limit", agent)]
    assert list(pack.load_custom(resolved_custom(source, "nothing"))([agent], {})) == []


def test_load_custom_refuses_a_missing_function(tmp_path: Path) -> None:
    source = write(tmp_path / "org.py", CUSTOM_SOURCE)
    with pytest.raises(ValueError, match="defines no function verify"):
        pack.load_custom(resolved_custom(source, "verify"))


def test_plain_replaces_unknown_values() -> None:
    props = unknown_checking_proxy({
        "name": "paude-demo-agent",
        "address": UNKNOWN_STRING_VALUE,
        "networks": ["paude-demo-internal", UNKNOWN_STRING_VALUE],
        "spec": {"replicas": UNKNOWN_NUMBER_VALUE, "ready": UNKNOWN_BOOLEAN_VALUE,
                 "ports": UNKNOWN_ARRAY_VALUE, "template": UNKNOWN_OBJECT_VALUE,
                 "hostAliases": [{"ip": UNKNOWN_STRING_VALUE, "hostnames": ["proxy"]}]},
        "count": 3, "internal": True,
    })
    with pytest.raises(UnknownValueError):
        props["address"]
    assert pack.plain(props) == {
        "name": "paude-demo-agent",
        "address": pack.UNKNOWN,
        "networks": ["paude-demo-internal", pack.UNKNOWN],
        "spec": {"replicas": pack.UNKNOWN, "ready": pack.UNKNOWN, "ports": pack.UNKNOWN,
                 "template": pack.UNKNOWN,
                 "hostAliases": [{"ip": pack.UNKNOWN, "hostnames": ["proxy"]}]},
        "count": 3, "internal": True,
    }
    assert pack.plain({"a": ("x", "y"), "b": "text"}) == {"a": ["x", "y"], "b": "text"}


def test_policies_one_per_built_in_rule_at_the_configured_level() -> None:
    default = pack.policies(resolve([]))
    assert [(p.name, p.description, p.enforcement_level) for p in default] == [
        (r.id, r.description, EnforcementLevel(r.level)) for r in BUILTIN]
    configured = {p.name: p.enforcement_level for p in pack.policies(resolve([("/org", (
        PolicyFile.model_validate({"rules": {
            "base-image-pinned": {"level": "mandatory"},
            "allowlist-wider-than-default": {"level": "disabled"}}})))]))}
    assert configured == {**{r.id: EnforcementLevel(r.level) for r in BUILTIN},
                          "base-image-pinned": EnforcementLevel.MANDATORY,
                          "allowlist-wider-than-default": EnforcementLevel.DISABLED}


def test_policies_add_custom_rules_last(tmp_path: Path) -> None:
    source = write(tmp_path / "org.py", CUSTOM_SOURCE)
    config = resolve([]).model_copy(update={"custom": [resolved_custom(source,
                                                                       level="mandatory")]})
    policies = pack.policies(config)
    assert [p.name for p in policies] == [*(r.id for r in BUILTIN), "org-rule"]
    assert policies[-1].enforcement_level == EnforcementLevel.MANDATORY


def engine_resource(type_: str, name: str, props: dict[str, Any],
                    protect: bool = False) -> SimpleNamespace:
    """A resource as pulumi-policy hands it to a stack policy."""
    return SimpleNamespace(resource_type=type_, name=name, urn=f"urn:pulumi:d::p::{type_}::{name}",
                           props=unknown_checking_proxy(props),
                           opts=SimpleNamespace(protect=protect))


def run_policy(config: PackConfig, rule_id: str,
               resources: list[SimpleNamespace]) -> list[tuple[str, str | None]]:
    [policy] = [p for p in pack.policies(config) if p.name == rule_id]
    reports: list[tuple[str, str | None]] = []
    policy.validate(SimpleNamespace(resources=resources),
                    lambda message, urn=None: reports.append((message, urn)))
    return reports


def test_policy_validate_reports_detail_fix_and_urn() -> None:
    rule = BY_ID["workspace-protected"]
    open_volume = engine_resource(VOLUME, "workspace", {"name": UNKNOWN_STRING_VALUE})
    [(message, urn)] = run_policy(resolve([]), rule.id, [open_volume])
    assert urn == open_volume.urn
    assert message == pack.message("the workspace is not protected: a plan could delete or "
                                   "replace it, and the agent's unfetched commits with it",
                                   rule.fix)
    assert message.endswith(f"\nFix: {rule.fix}")
    kept = engine_resource(VOLUME, "workspace", {"name": "w"}, protect=True)
    assert run_policy(resolve([]), rule.id, [kept]) == []


def test_policy_validate_uses_the_configured_limit() -> None:
    big = engine_resource(PVC, "workspace", {"spec": {"resources": {"requests": {
        "storage": "60Gi"}}}})
    assert run_policy(resolve([]), "pvc-size-limit", [big]) == []
    tighter = resolve([("/org", PolicyFile.model_validate(
        {"rules": {"pvc-size-limit": {"max_size": "50Gi"}}}))])
    [(message, urn)] = run_policy(tighter, "pvc-size-limit", [big])
    assert urn == big.urn and "asks for 60Gi, more than the limit 50Gi" in message


# ---------------------------------------------------------------- reading findings back


def policy_event(message: str, level: str = "mandatory",
                 urn: str | None = "urn:pulumi:demo::paude::kubernetes:apps/v1:StatefulSet::agent"
                 ) -> auto.PolicyEvent:
    return auto.PolicyEvent(message=message, color="never",
                            policy_name="yolo-unrestricted-egress", policy_pack_name="paude",
                            policy_pack_version="", policy_pack_version_tag="",
                            enforcement_level=level, resource_urn=urn)


def test_finding_parses_description_detail_and_fix() -> None:
    finding = _finding(policy_event("Description.\ndetail text\nFix: do this\n"))
    assert finding == PolicyFinding(rule="yolo-unrestricted-egress", level="mandatory",
                                    resource="agent", message="detail text", fix="do this")
    assert finding.blocking


def test_finding_round_trips_the_packs_message() -> None:
    rule = BY_ID["allowlist-wider-than-default"]
    text = f"{rule.description}\n{pack.message('additions: github.com', rule.fix)}\n"
    finding = _finding(policy_event(text, level="advisory", urn=None))
    assert finding == PolicyFinding(rule="yolo-unrestricted-egress", level="advisory",
                                    resource="", message="additions: github.com", fix=rule.fix)
    assert not finding.blocking


def test_finding_without_detail_or_fix() -> None:
    assert _finding(policy_event("Only a description.")) == PolicyFinding(
        "yolo-unrestricted-egress", "mandatory", "agent", "Only a description.", "")
    two_lines = _finding(policy_event("Description.\nfirst line\n\nsecond line\nFix: f"))
    assert (two_lines.message, two_lines.fix) == ("first line second line", "f")


# ---------------------------------------------------------------- broken custom rules


def test_a_crashing_check_fails_closed_at_its_level(tmp_path: Path) -> None:
    source = write(tmp_path / "org.py", "def check(resources):\n    raise KeyError('x')\n")
    custom = resolved_custom(source, level="mandatory").model_copy(update={"function": "check"})
    config = resolve([]).model_copy(update={"custom": [custom]})
    [(message, urn)] = run_policy(config, custom.id, [engine_resource(VOLUME, "w", {})])
    assert urn is None
    assert message == pack.message("the rule could not run: KeyError: 'x'",
                                   "fix the rule's check function")


def test_a_custom_rule_that_cannot_import_names_the_file(tmp_path: Path) -> None:
    source = write(tmp_path / "org.py",
                   "import no_such_module_here\ndef check(r):\n    return []\n")
    custom = resolved_custom(source).model_copy(update={"function": "check"})
    with pytest.raises(ValueError, match=r"importing .*org\.py failed: ModuleNotFoundError"):
        pack.load_custom(custom)


def test_a_pack_start_failure_becomes_one_clear_error() -> None:
    from pulumi import automation as auto

    from paude.engine import _engine_error

    exc = auto.CommandError(auto.CommandResult(
        stdout="", code=1,
        stderr="error: policy pack failed to start: exit status 1\n"
               "paude policy pack could not start: custom rule boom: importing /r/r.py failed: "
               "ModuleNotFoundError: No module named 'x'\n"))
    err = _engine_error(exc, "demo", [])
    assert err.message == ("session demo: the policy pack could not start: custom rule boom: "
                           "importing /r/r.py failed: ModuleNotFoundError: No module named 'x'")
    assert "policy.yaml" in (err.hint or "")


def test_a_finding_about_the_whole_stack_names_no_resource() -> None:
    urn = "urn:pulumi:demo::paude::pulumi:pulumi:Stack::paude-demo"
    assert _finding(policy_event("D.\nwhole session\nFix: f", urn=urn)).resource == ""
