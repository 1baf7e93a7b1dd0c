"""Placeholder while the solver is written."""
from __future__ import annotations

NOTE = ""


def offline_optimal_applies(scenario):
    return False, "not implemented yet"


def offline_optimal_factory():
    raise NotImplementedError
