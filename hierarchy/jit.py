"""Optional compilation: the same loop code runs compiled by numba where it is installed
(the simulator, training hosts) and as plain Python where it is not (a small gateway)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

try:
    from numba import njit as _njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised on gateways without numba
    HAVE_NUMBA = False


def compiled(fn: F) -> F:
    """Compile `fn` with numba (cached on disk) when numba is available."""
    if HAVE_NUMBA:
        return _njit(cache=True)(fn)  # type: ignore[return-value]
    return fn
