"""Unit tests run paude's service layer in the test process: no fork server there (a fork
of pytest importing the plugins' modules for every test that reaches an engine call).
tests/unit/test_forkserver.py starts its own in child processes."""

from __future__ import annotations

import pytest

from paude import forkserver


@pytest.fixture(autouse=True)
def _no_fork_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.DISABLE, "1")
