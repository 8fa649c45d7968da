"""paude: run autonomous coding agents in sandboxed containers, declared as Pulumi stacks."""

from __future__ import annotations

__version__ = "0.1.0"
