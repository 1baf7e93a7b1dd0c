"""Where containers run: a bounded map (app, container) -> location, shared by both agents."""

from __future__ import annotations

from collections import OrderedDict


class LocationBook:
    """(app, container) -> site id or 'cloud', from the decisions seen.

    Bounded: the oldest entries are forgotten first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._where: OrderedDict[tuple[str, str], str] = OrderedDict()

    def record(self, app: str, container: str, location: str) -> None:
        self._where[(app, container)] = location
        self._where.move_to_end((app, container))
        while len(self._where) > self.max_entries:
            self._where.popitem(last=False)

    def where(self, app: str, container: str) -> str | None:
        return self._where.get((app, container))
