"""What the deploy/ checks know about metrics: the series the services declare, and the
metric names a PromQL expression uses.

The catalog imports each service's ``metrics`` module (the one place a service declares its
metrics) and reads the families from the prometheus_client registry, so it cannot drift from
the code. Process and Python runtime metrics come from prometheus_client's default
collectors, which every service exposes.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import promql_parser
from prometheus_client import REGISTRY, CollectorRegistry

METRICS_MODULES = ("cctriage_routing.metrics", "cctriage_triage.metrics")
# Series Prometheus itself adds to every scrape.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}


def missing_modules() -> list[str]:
    missing = []
    for module in METRICS_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            missing.append(module)
    return missing


def declared_series() -> set[str]:
    """Every series name a cctriage service can expose on /metrics.

    A module may declare its metrics on the default registry (which also carries the process
    and Python collectors) or on its own ``REGISTRY``; both are read.
    """
    registries = [REGISTRY]
    for module in METRICS_MODULES:
        try:
            own = getattr(importlib.import_module(module), "REGISTRY", None)
        except ModuleNotFoundError:
            continue
        if isinstance(own, CollectorRegistry) and own is not REGISTRY:
            registries.append(own)
    names = set(SCRAPE_SERIES)
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def _walk(node) -> Iterator[str]:
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            yield node.name
        return
    if isinstance(node, promql_parser.MatrixSelector):
        yield from _walk(node.vector_selector)
    elif isinstance(node, promql_parser.BinaryExpr):
        yield from _walk(node.lhs)
        yield from _walk(node.rhs)
    elif isinstance(node, promql_parser.Call):
        for arg in node.args:
            yield from _walk(arg)
    elif isinstance(node, promql_parser.AggregateExpr):
        yield from _walk(node.expr)
        if node.param is not None:
            yield from _walk(node.param)
    elif isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
        yield from _walk(node.expr)


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression; raises ValueError if it does not parse."""
    return set(_walk(promql_parser.parse(expr)))
