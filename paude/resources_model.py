"""paude.yaml `resources`: the schema of the agent container's limits.

Apart from paude/sizing.py (which turns limits into podman flags and reads them back) so
the stack's providers, which run in a process of their own for every engine run, do not
import pydantic."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from paude.sizing import (
    _CPU,
    _QUANTITY,
    _UNITS,
    CPUS_MAX,
    CPUS_MIN,
    MEMORY_MAX,
    MEMORY_MIN,
    PIDS_MAX,
    PIDS_MIN,
    UNLIMITED,
)


def _memory(value: Any) -> Any:
    if value == UNLIMITED or value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("a memory size such as '4Gi' or '512Mi' (or 'unlimited')")
    text = str(value)
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a memory size: use a number with Ki, Mi, Gi or Ti "
                         "(binary) or k, M, G, T (decimal), for example '4Gi'")
    size = int(Decimal(match.group(1)) * _UNITS[match.group(2) or ""])
    if not MEMORY_MIN <= size <= MEMORY_MAX:
        raise ValueError(f"{text} is outside 256Mi..4Ti: below, the agent cannot run Claude "
                         "Code; above, it is no limit at all (say 'unlimited' for that)")
    return text


def _cpus(value: Any) -> Any:
    if value == UNLIMITED or value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("a number of CPUs such as 2, 0.5 or '500m' (or 'unlimited')")
    text = str(value)
    match = _CPU.fullmatch(text)
    try:
        count = Decimal(match.group(1)) / (1000 if match.group(2) else 1) if match else None
    except InvalidOperation:
        count = None
    if count is None:
        raise ValueError(f"{text!r} is not a number of CPUs: use 2, 0.5 or '500m'")
    if not CPUS_MIN <= count <= CPUS_MAX:
        raise ValueError(f"{text} CPUs is outside 0.1..1024")
    return text


def _pids(value: Any) -> Any:
    if value == UNLIMITED or value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a whole number of processes such as 4096 (or 'unlimited')")
    if not PIDS_MIN <= value <= PIDS_MAX:
        raise ValueError(f"{value} processes is outside {PIDS_MIN}..{PIDS_MAX}")
    return value


Memory = Annotated[str, BeforeValidator(_memory), WithJsonSchema(
    {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?|unlimited)$"})]
Cpus = Annotated[str, BeforeValidator(_cpus), WithJsonSchema(
    {"oneOf": [{"type": "number", "minimum": 0.1, "maximum": 1024},
               {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?m?|unlimited)$"}]})]
Pids = Annotated[int | Literal["unlimited"], BeforeValidator(_pids), WithJsonSchema(
    {"oneOf": [{"type": "integer", "minimum": PIDS_MIN, "maximum": PIDS_MAX},
               {"const": UNLIMITED}]})]


class ResourcesConfig(BaseModel):
    """paude.yaml `resources`: the agent container's limits."""

    model_config = ConfigDict(extra="forbid")

    memory: Memory | None = Field(
        None, description="The agent's memory limit (no swap beyond it), e.g. '4Gi'; "
                          "'unlimited' removes it. Default 4Gi.")
    cpus: Cpus | None = Field(
        None, description="CPUs the agent may use, e.g. 2 or '500m'; 'unlimited' removes "
                          "the limit. Default 2.")
    pids: Pids | None = Field(
        None, description="Processes (and threads) the agent may run at once, e.g. 4096; "
                          "'unlimited' removes the limit. Default 4096.")


DEFAULT_AGENT = ResourcesConfig(memory="4Gi", cpus="2", pids=4096)
