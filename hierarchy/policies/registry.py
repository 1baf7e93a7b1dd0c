"""Policies by the names used on the command line."""

from __future__ import annotations

from hierarchy.policies.base import Policy, PolicyContext
from hierarchy.policies.cloud_level import NearPeersCloudRule
from hierarchy.policies.heuristics import EDGE_RULES, STATIC_HEADROOM

# Every heuristic baseline, in the order reports list them.
POLICY_NAMES: tuple[str, ...] = tuple(EDGE_RULES)
# The ones given the learned policy's sizing levers (a predicted size, dynamic resizing); the
# others size at request with resizing off, as the offline optimum's program does too.
SIZING_POLICY_NAMES: tuple[str, ...] = (
    "power-aware-rightsized", "power-aware-resize", "power-aware-resize-slo")
STANDARD_POLICY_NAMES: tuple[str, ...] = tuple(
    n for n in POLICY_NAMES if n not in SIZING_POLICY_NAMES)


class UnknownPolicyError(ValueError):
    """A policy name that no factory knows; the message lists the known ones."""


def make_policy(name: str, ctx: PolicyContext, headroom: int = STATIC_HEADROOM) -> Policy:
    """The heuristic `name`: its edge rule and the shared near-peers cloud rule.

    `headroom` is the resize-knob level every placement sets (default: resizing off).
    A fresh policy starts with fresh state (round-robin pointers, the random generator
    seeded with `ctx.seed`).
    """
    try:
        rule = EDGE_RULES[name]
    except KeyError:
        raise UnknownPolicyError(
            f"unknown policy {name!r}; known policies: {', '.join(POLICY_NAMES)}"
        ) from None
    return Policy(
        name=name,
        edge=rule(ctx.edge_encoder, headroom=headroom, seed=ctx.seed),
        cloud=NearPeersCloudRule(),
    )
