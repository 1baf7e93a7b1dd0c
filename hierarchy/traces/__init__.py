"""Workload traces: hierarchy's own file formats, their readers/writers, and converters.

NumPy and the standard library only (the edge agent imports this). Formats (``docs/traces.md``):

* usage series CSV ``container_id,t_s,cpu_cores,mem_gib[,...]`` -> ``read_usage`` /
  ``iter_usage`` / ``iter_usage_series`` / ``UsageWriter``;
* call graphs JSON lines -> ``read_callgraphs`` / ``iter_callgraphs`` / ``CallGraphWriter``;
* arrivals CSV ``t_s,cpu_cores,mem_gib[,lifetime_s,id,group]`` -> ``read_arrivals`` /
  ``iter_arrivals`` / ``ArrivalsWriter``;
* public formats -> ours: ``hierarchy.traces.convert.convert`` (and its CLI ``main``).
"""

from __future__ import annotations

from hierarchy.traces.arrivals import (
    ArrivalRow,
    Arrivals,
    ArrivalsWriter,
    iter_arrivals,
    read_arrivals,
    write_arrivals,
)
from hierarchy.traces.callgraph import (
    USER,
    CallGraph,
    CallGraphWriter,
    iter_callgraphs,
    parse_callgraph,
    read_callgraphs,
    write_callgraphs,
)
from hierarchy.traces.errors import ConvertStats, TraceFormatError
from hierarchy.traces.usage import (
    UsageRow,
    UsageSeries,
    UsageWriter,
    iter_usage,
    iter_usage_series,
    read_usage,
    series_rows,
    write_usage,
)

__all__ = [
    "USER", "ArrivalRow", "Arrivals", "ArrivalsWriter", "CallGraph", "CallGraphWriter",
    "ConvertStats", "TraceFormatError", "UsageRow", "UsageSeries", "UsageWriter",
    "iter_arrivals", "iter_callgraphs", "iter_usage", "iter_usage_series", "parse_callgraph",
    "read_arrivals", "read_callgraphs", "read_usage", "series_rows", "write_arrivals",
    "write_callgraphs", "write_usage",
]
