"""Unit tests run paude's service layer in the test process: no fork server there (a fork
of pytest importing the plugins' modules for every test that reaches an engine call).
tests/unit/test_forkserver.py starts its own in child processes. Nor do they read this
machine's PAUDE_HOME: after `make setup`, its config.yaml names a local base image, and a
test of the defaults would see that instead (a test that needs a PAUDE_HOME sets its own)."""

from __future__ import annotations

import pytest

from paude import forkserver


@pytest.fixture(autouse=True)
def _no_fork_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.DISABLE, "1")


@pytest.fixture(autouse=True)
def _own_paude_home(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
                    ) -> None:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path_factory.mktemp("paude-home")))
