"""A seeded sample of generated definitions through the real CLI: valid ones plan, refused
ones exit 1 from `apply --yes` with a message and no traceback, and leave nothing behind."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from paude.config import load_paude_file
from paude.errors import ConfigError
from paude.models import resolve
from tests.fuzz import strategies as fz
from tests.integration.helpers import BASE_IMAGE, Paude, podman
from tests.integration.test_invalid_config import _nothing_created

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

SAMPLE = 5
SEED = 20261202
PLACEHOLDER = "fz-session"
# Fields a plan on this machine cannot use whatever their value: another state backend, CA
# files and Dockerfiles that do not exist here, a cluster.
_MACHINE_BOUND = ("dockerfile", "context", "ca_certificates", "base")


def _for_this_machine(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    spec = {k: v for k, v in spec.items() if k != "backend"}
    if isinstance(spec.get("image"), dict):
        spec["image"] = {k: v for k, v in spec["image"].items() if k not in _MACHINE_BOUND}
    return spec


@st.composite
def _definitions(draw: st.DrawFn) -> str:
    """A generated paude.yaml with the session PLACEHOLDER, fit for a plan on this machine
    (podman, the test base image, local state) but otherwise as generated."""
    doc = draw(fz.paude_documents(["/nonexistent/ca.pem"]))
    doc = {k: v for k, v in doc.items() if k != "state"} if isinstance(doc, dict) else doc
    if isinstance(doc, dict):
        doc["defaults"] = _for_this_machine(doc.get("defaults") or {})
        if isinstance(doc["defaults"], dict):
            image = doc["defaults"].get("image")
            doc["defaults"] = {**doc["defaults"], "backend": "podman",
                               "agent": {"install": "none", "command": ["bash"]},
                               "image": {**(image if isinstance(image, dict) else {}),
                                         "base": BASE_IMAGE}}
        sessions = doc.get("sessions") if isinstance(doc.get("sessions"), dict) else {}
        doc["sessions"] = {PLACEHOLDER: _for_this_machine(next(iter(sessions.values()), {}))}
    return fz.as_yaml(doc, draw(st.integers(0, 3)))


def _verdict(text: str) -> bool | None:
    """True: valid and plannable; False: refused by validation; None: neither (a policy
    violation, or text that is not UTF-8)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "paude.yaml"
        try:
            path.write_text(text, encoding="utf-8")
            file = load_paude_file(path)
        except ConfigError:
            return False
        except UnicodeEncodeError:
            return None
    try:
        session = resolve(file, PLACEHOLDER)
    except Exception:
        return None
    if session.agent.install != "none" or session.backend != "podman":
        return None
    # yolo with unrestricted egress fails a mandatory policy rule unless waived.
    if session.yolo and "all" in session.allowed_domains and not session.waivers:
        return None
    return True


@functools.cache
def _sample(valid: bool) -> list[str]:
    """The first SAMPLE generated definitions of one verdict that set more than the
    machine's defaults (a fixed seed: the same every run)."""
    found: list[str] = []
    strategy = _definitions() if valid else st.one_of(
        _definitions(), fz.mutated_text([t.replace("demo", PLACEHOLDER) for t in fz.SEED_YAML]))

    @settings(max_examples=800, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @seed(SEED)
    @given(strategy)
    def gather(text: str) -> None:
        if len(found) < SAMPLE and len(text) > 260 and _verdict(text) is valid:
            found.append(text)

    gather()
    assert len(found) == SAMPLE, f"only {len(found)} {'valid' if valid else 'refused'} samples"
    return found


def _write(paude: Paude, text: str) -> str:
    text = text.replace(PLACEHOLDER, paude.session)
    (paude.repo / "paude.yaml").write_text(text, encoding="utf-8")
    return text


@pytest.mark.parametrize("index", range(SAMPLE))
def test_a_valid_generated_definition_plans(paude: Paude, index: int) -> None:
    text = _write(paude, _sample(True)[index])
    result = paude.run("plan", paude.session)
    assert result.returncode == 0, f"{text}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert paude.session in result.stdout
    # A plan creates nothing either.
    label = f"label=paude.session={paude.session}"
    assert podman("ps", "-aq", "--filter", label).stdout.strip() == ""


@pytest.mark.parametrize("index", range(SAMPLE))
def test_a_refused_generated_definition_leaves_nothing(paude: Paude, index: int) -> None:
    text = _write(paude, _sample(False)[index])
    result = paude.run("apply", paude.session, "--yes")
    assert result.returncode == 1, f"{text}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert (paude.repo / "paude.yaml").read_text(encoding="utf-8") == text
    _nothing_created(paude, paude.session)
