"""The metric names the platform exports, read from the code that exports them: the serving
tier's registry (serving/telemetry.py), the pushed batch figures (contracts/metrics.py) and
what Prometheus itself adds to every scrape. Rule and dashboard tests check their PromQL
against this set."""

from __future__ import annotations

import re

from contracts import metrics

# Series Prometheus writes for every scrape target.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
}
# A metric name of ours (recs_*) or `up`, not followed by `(` (a function); label values are
# blanked first, so a quoted value that looks like a name is not counted.
NAME = re.compile(r"\b(recs_[a-zA-Z0-9_:]*|up)\b(?!\s*\()")


def serving_names() -> set[str]:
    """Every series name the serving tier's /metrics can carry."""
    from prometheus_client.metrics import MetricWrapperBase

    from serving import telemetry

    names = set()
    for metric in vars(telemetry).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        for family in metric.describe():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def exported() -> set[str]:
    """Every metric name a query of ours may use."""
    return serving_names() | {m.name for m in metrics.PUSHED} | SCRAPE_SERIES


def used(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label values in quotes are not names)."""
    return set(NAME.findall(re.sub(r'"[^"]*"', '""', expr)))
