"""Hypothesis strategies for the documents paude reads from a repository: mostly valid
values, each field now and then replaced by a hostile or ill-typed one, and raw text
mutations of valid documents."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import strategies as st

from paude.fields import DOMAIN_GROUPS, STATE_SCHEMES

# Strings that broke (or were meant to break) something: line and instruction breaks for
# squid.conf and Containerfiles, shell and YAML metacharacters, option-like words, host
# paths, IP forms, case-folding surprises (the Kelvin sign lowercases to "k"), and text
# that is not text (a lone surrogate).
SHARP = [
    "", " ", "-", "-rf", "--privileged", "demo\n", "demo\r\n", "a\nb", "a\rb", "x\x00y",
    "a\x85b", "a\u2028b", "a\u2029b", "\ufeffbom", "a\tb", "a b", "#comment", "a#b",
    "example.com\nhttp_access allow all", "example.com http_access", "ok.example.com #x",
    "$(id)", "`id`", "${HOME}", "a;b", "a&&b", "a|b", "'", '"', "\\", "\\\n", "a\\", "{{ x }}",
    "{% raw %}", "..", "../x", "/etc/passwd", "~", "~root/.ssh/id_rsa", "~nosuchuser-fz/x",
    "127.0.0.1", "127.1", "0x7f.1", "[::1]", "::1", "10.0.0.1:80", "http://example.com/x",
    "*.example.com", ".com", ".example.com", "\u212a.example.com", "İ.example.com",
    "xn--bcher-kva.example", "a" * 64 + ".com", ("a" * 63 + ".") * 4 + "com", "ß.de",
    "yes", "no", "on", "off", "null", "~", "0", "1e3", "0o17", ".inf", "<<", "*a", "&a",
    "!!python/object/apply:os.system", "%YAML 1.1", "---", "...", "  padded  ",
    "\udcff", "caf\u00e9", "\U0001f600", "\x7f", "\x1b[31mred", "Demo", "x_y",
    "a" * 41, "a" * 40, "a-", "1abc", "paude", "FROM scratch", "RUN rm -rf /",
    "ENV A=1\nRUN id", "10Gi\n", "10Gi", "1.5Ti", "-1Gi", "1e9", "Gi",
]
ODD_CHARS = "\n\r\t\x00\x0b\x0c\x1b\x7f\x85\u2028\u2029\ufeff \\\"'#;$`|&<>{}[]*!%@:,?=~/.-_"


def sharp_text(max_size: int = 24) -> st.SearchStrategy[str]:
    """Short text rich in characters that have a meaning somewhere paude writes them."""
    return st.one_of(
        st.sampled_from(SHARP),
        st.text(st.sampled_from(list(ODD_CHARS + "abcz09AZ\u00e9\u4e2d")), max_size=max_size),
        st.text(max_size=max_size),
    )


def ill_typed() -> st.SearchStrategy[Any]:
    """A value of the wrong type (or a wrong string) for whatever field it replaces."""
    scalars = st.one_of(sharp_text(), st.integers(-10**20, 10**20),
                        st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none())
    return st.one_of(scalars, st.lists(scalars, max_size=3),
                     st.dictionaries(sharp_text(8), scalars, max_size=3))


def mostly(valid: st.SearchStrategy[Any], odds: int = 16) -> st.SearchStrategy[Any]:
    """`valid` about (odds-1)/odds of the time, else something hostile or ill-typed."""
    return rarely(ill_typed(), valid, odds)


def rarely(odd: st.SearchStrategy[Any], usual: st.SearchStrategy[Any],
           odds: int) -> st.SearchStrategy[Any]:
    """`odd` one time in `odds`, else `usual` (one_of would weigh them equally)."""
    return st.sampled_from(range(odds)).flatmap(lambda i: odd if i == odds - 1 else usual)


names = st.from_regex(r"[a-z]([a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
hosts = st.builds(lambda parts, tld: ".".join([*parts, tld]),
                  st.lists(labels, min_size=1, max_size=3), st.sampled_from(["com", "org", "io"]))
plain_domains = st.one_of(st.sampled_from(sorted(DOMAIN_GROUPS)), hosts,
                          hosts.map(lambda h: "." + h), hosts.map(str.upper))
# Method/path rules: valid ones, and values squid or its configuration reader would read
# as something else (quotes name files, '#' starts comments, spaces split values).
rule_paths = st.one_of(
    st.sampled_from(["/v1/", "/a.b+c/", "~^/repos/[^/]+/issues$", "~a|b", "/x#y", "~\"/etc",
                     "~(?i)x", "/a b", "~^/\\d+", "", "~"]),
    st.text(st.characters(codec="utf-8", blacklist_categories=("Cs",)), max_size=12),
    st.text(alphabet="/abc%.?~^$[]{}()|*+\\\"' #\n", max_size=12))
rule_methods = st.one_of(st.sampled_from(["GET", "head", "POST", "CONNECT", "FETCH", ""]),
                         st.text(max_size=6))
rules = st.fixed_dictionaries(
    {"host": st.one_of(hosts, hosts.map(lambda h: "." + h), st.sampled_from(["pypi", "a b"]))},
    optional={"methods": st.lists(rule_methods, max_size=3),
              "paths": st.lists(rule_paths, max_size=3)})
domains = st.one_of(plain_domains, plain_domains, plain_domains, rules)
packages = st.from_regex(r"[a-z0-9][a-z0-9+.\-]{1,12}(=[A-Za-z0-9.+~:\-]{1,8})?", fullmatch=True)
env_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
# Values may hold anything on one line: quotes, $, backslashes, unicode.
env_values = st.text(st.characters(blacklist_categories=("Cs",),
                                   blacklist_characters="\n\r\x00"), max_size=20)
images = st.one_of(st.sampled_from(["docker.io/library/debian:bookworm-slim",
                                    "localhost/paude-base:bookworm", "python:3.12",
                                    "registry.example.com:5000/team/img@sha256:" + "a" * 64]),
                   st.from_regex(r"[a-z0-9][a-z0-9./:@_-]{0,30}", fullmatch=True))
quantities = st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,2})?(Ki|Mi|Gi|Ti|k|M|G)?", fullmatch=True)
repo_paths = st.one_of(st.sampled_from(["Dockerfile", "docker/Dockerfile", ".", "docker",
                                        "missing/Dockerfile", "../Dockerfile", "/etc/passwd",
                                        "loop", "outside-link"]),
                       st.from_regex(r"[a-zA-Z0-9_.][a-zA-Z0-9_./-]{0,20}", fullmatch=True))
# One argv element may hold anything but NUL; a string is split like a shell would.
arguments = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    max_size=16)
agent_args = st.one_of(st.lists(arguments, max_size=4),
                       st.sampled_from(["--model opus", "-p 'refactor the code'", "'unclosed",
                                        "--print=hi", "a\\ b c", ""]))


def json_values(depth: int = 2) -> st.SearchStrategy[Any]:
    """Free-form JSON-like values (devcontainer features)."""
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), sharp_text(8))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(sharp_text(8), inner, max_size=3)),
        max_leaves=6)


def optional_fields(fields: dict[str, st.SearchStrategy[Any]],
                    extra_keys: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping holding any subset of `fields`, now and then with an unknown key."""
    extras = (st.dictionaries(sharp_text(10), ill_typed(), max_size=1) if extra_keys
              else st.just({}))
    return st.builds(lambda chosen, extra: {**extra, **chosen},
                     st.fixed_dictionaries({}, optional={k: mostly(v) for k, v in fields.items()}),
                     rarely(extras, st.just({}), 12))


def image_fields(ca_paths: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    """image: in paude.yaml."""
    return {
        "base": images,
        "dockerfile": repo_paths,
        "context": repo_paths,
        "build_args": st.dictionaries(env_names, env_values, max_size=3),
        "build_domains": st.lists(plain_domains, max_size=3),
        "packages": st.lists(packages, max_size=4),
        "setup": st.one_of(st.none(), st.text(max_size=40), st.sampled_from(
            ["pip install -r requirements.txt", "echo 'a\nb'\nexit 1", "#!/bin/sh\n\\\n"])),
        "env": st.dictionaries(env_names, env_values, max_size=3),
        "features": st.dictionaries(sharp_text(12), json_values(), max_size=2),
        "ca_certificates": st.lists(st.sampled_from(ca_paths), max_size=2),
    }


def session_spec(ca_paths: list[str], *, waivers: bool = True) -> st.SearchStrategy[Any]:
    """One session (or defaults:) mapping."""
    fields: dict[str, st.SearchStrategy[Any]] = {
        "backend": st.sampled_from(["podman", "openshift"]),
        "yolo": st.booleans(),
        "allowed_domains": st.lists(domains, max_size=4),
        "denied_requests": st.lists(rules, max_size=2),
        "agent": optional_fields({"install": st.sampled_from(["native", "npm", "none"]),
                                  "command": st.lists(arguments, min_size=1, max_size=2),
                                  "args": agent_args}),
        "image": optional_fields(image_fields(ca_paths)),
        "openshift": optional_fields({
            "namespace": labels, "context": st.sampled_from(["prod", "kind-x", "a/b"]),
            "pvc_size": quantities, "storage_class": hosts,
            "image_registry": images, "registry_tls_verify": st.booleans(),
            "image_pull_secret": labels, "create_namespace": st.booleans(),
            "wait_for_ready": st.booleans()}),
        "proxy": optional_fields({"base": images}),
        "setup": st.one_of(st.none(), st.text(max_size=40), st.sampled_from(
            ["pip install -r requirements.txt", "echo 'a\nb'\nexit 1", "  "])),
        "venv": st.one_of(st.sampled_from(["auto", "none", ".venv"]),
                          st.lists(st.one_of(repo_paths, sharp_text(8)), max_size=2)),
    }
    if waivers:
        fields["waivers"] = st.dictionaries(
            st.sampled_from(["yolo-unrestricted-egress"]),
            st.sampled_from(["approved by security, ticket SEC-1", "short", "why\nnot"]),
            max_size=1)
    return st.one_of(st.none(), optional_fields(fields))


def paude_documents(ca_paths: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Near-valid paude.yaml documents."""
    return optional_fields({
        "version": st.just(1),
        "state": optional_fields({"backend": st.one_of(
            st.sampled_from(STATE_SCHEMES).map(lambda s: s + "bucket/x"), sharp_text())}),
        "defaults": session_spec(ca_paths, waivers=False),
        "sessions": st.dictionaries(rarely(sharp_text(), names, 10), session_spec(ca_paths),
                                    min_size=1,
                                    max_size=3),
    })


# ---------------------------------------------------------------- serialising


def as_yaml(data: Any, style: int) -> str:
    """`data` as YAML text in one of several styles (block, flow, JSON, unicode)."""
    if style == 0:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if style == 1:
        return yaml.safe_dump(data, default_flow_style=True, width=60)
    if style == 2:
        return json.dumps(data)
    return yaml.safe_dump(data, default_style='"', allow_unicode=True)


# ---------------------------------------------------------------- raw text mutations

SEED_YAML = [
    "version: 1\nsessions:\n  demo: {}\n",
    "version: 1\ndefaults:\n  backend: podman\n  yolo: false\n  allowed_domains: [default]\n"
    "  image:\n    base: docker.io/library/debian:bookworm-slim\n    packages: [make, gcc]\n"
    "    setup: pip install -r requirements.txt\n    env: {A: '1'}\n"
    "  openshift: {namespace: team-a, pvc_size: 10Gi}\nsessions:\n  my-project: {yolo: true}\n"
    "  reviewer: {backend: openshift, allowed_domains: [default, github]}\n",
    "defaults: &d {yolo: true, allowed_domains: [.example.com]}\nsessions:\n  a: *d\n"
    "  b: {<<: *d, backend: podman}\n",
    "sessions:\n  demo:\n    agent:\n      install: npm\n      args: -p 'fix it'\n"
    "    waivers:\n      yolo-unrestricted-egress: approved by security, SEC-12\n",
]
# Fragments spliced into documents: YAML syntax, aliases, tags, breaks, odd bytes.
FRAGMENTS = [
    "\n", "\r", "\x85", "\u2028", "\u2029", "\x00", "\t", " ", ":", ": ", "- ", "? ", "{", "}",
    "[", "]", ",", "&a ", "*a", "<<: ", "!!str ", "!!binary ", "!!python/name:os.system ",
    "!foo ", "%TAG ! tag:x\n---\n", "---\n", "...\n", "#", "'", '"', "|\n", ">-\n", "\\",
    "\\u0000", "\\udcff", "\\x85", "\ufeff", "\U0001f600", "yes", "~", "null", "1e400",
    "0x1F", ".nan", "example.com\nhttp_access allow all", "\n  extra: 1", "\n  - x",
    "sessions:", "\nsessions: 1\n", "\nversion: 2\n", "\ndefaults: []\n",
]


def alias_bomb(levels: int, width: int) -> str:
    """`levels` anchors each listing the previous one `width` times (width^levels nodes)."""
    lines = [f"  l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return ("sessions:\n  demo:\n    image:\n      features:\n"
            + "".join(f"    {line}\n" for line in lines))


def nesting(depth: int, opener: str) -> str:
    """A feature value nested `depth` levels deep in flow or block style."""
    if opener == "block":
        body = "".join(f"{'  ' * (i + 4)}k:\n" for i in range(depth))
        return "sessions:\n  demo:\n    image:\n      features:\n" + body
    inner = "[" * depth + "]" * depth if opener == "[" else "{a: " * depth + "1" + "}" * depth
    return "sessions:\n  demo:\n    image:\n      features: {f: " + inner + "}\n"


shapes = st.one_of(
    st.builds(alias_bomb, st.integers(2, 12), st.integers(2, 12)),
    st.builds(nesting, st.integers(1, 3000), st.sampled_from(["[", "{", "block"])),
    st.builds(lambda n: "sessions:\n  demo:\n    image:\n      setup: " + "x" * n + "\n",
              st.integers(0, 2_000_000)),
    st.builds(lambda n: "sessions:\n" + "".join(f"  s{i}: {{}}\n" for i in range(n)),
              st.integers(0, 5000)),
    st.builds(lambda n: "sessions:\n  demo:\n    allowed_domains: [" + ", ".join(
        f"h{i}.example.com" for i in range(n)) + "]\n", st.integers(0, 20000)),
    st.builds(lambda n: "a: &a [" + ", ".join(["*a"] * n) + "]\n", st.integers(1, 3)),
    st.builds(lambda k: f"sessions:\n  demo: {{}}\n  demo: {{yolo: {k}}}\n", st.booleans()),
)


@st.composite
def mutated_text(draw: st.DrawFn, seeds: list[str],
                 fragments: list[str] = FRAGMENTS) -> str:
    """A seed document with a few splices, deletions and duplications."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.integers(0, 3))
        if action == 0:
            text = text[:at] + draw(st.one_of(st.sampled_from(fragments), sharp_text(6))) \
                + text[at:]
        elif action == 1:
            end = draw(st.integers(at, min(len(text), at + 12)))
            text = text[:at] + text[end:]
        elif action == 2:
            end = draw(st.integers(at, min(len(text), at + 30)))
            text = text[:end] + text[at:end] + text[end:]
        else:
            text = text[:at] + draw(st.text(max_size=4)) + text[at:]
    return text


@st.composite
def mutated_bytes(draw: st.DrawFn, seeds: list[str]) -> bytes:
    """A seed document's bytes with a few raw byte splices (invalid UTF-8, BOMs, NUL)."""
    data = draw(st.sampled_from(seeds)).encode()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        piece = draw(st.one_of(st.binary(max_size=4), st.sampled_from(
            [b"\xff", b"\xc3", b"\xed\xb3\xbf", b"\xef\xbb\xbf", b"\x00", b"\xfe\xff",
             b"\xc2\x85", b"\r\n"])))
        data = data[:at] + piece + data[at:]
    return data
