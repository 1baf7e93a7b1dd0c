"""Zeroconf discovery joins only the hierarchy it is told to (loopback only)."""

from __future__ import annotations

import uuid

from hierarchy.discovery import Advertiser, discover, service_info

LOOPBACK = ["127.0.0.1"]


def test_discover_ignores_other_hierarchies_and_finds_its_own() -> None:
    mine, other = f"mine-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    decoy = Advertiser(service_info(f"decoy-{other}", "127.0.0.1", 1, "mqtt://127.0.0.1:1",
                                    None, other), LOOPBACK)
    try:
        # Only the other hierarchy is announced: nothing of ours is found.
        assert discover(2.0, LOOPBACK, hierarchy=mine) is None
        real = Advertiser(service_info(f"real-{mine}", "127.0.0.1", 2, "mqtt://127.0.0.1:2",
                                       "http://127.0.0.1:2", mine), LOOPBACK)
        try:
            found = discover(8.0, LOOPBACK, hierarchy=mine)
        finally:
            real.close()
    finally:
        decoy.close()
    assert found is not None
    assert found.hierarchy == mine and found.broker == "mqtt://127.0.0.1:2"
