"""Routing settings stop start-up with the variable named; the README lists every metric and setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from cctriage_common.settings import SettingsError, describe, load
from cctriage_routing import metrics
from cctriage_routing.settings import RoutingSettings
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

README = Path(__file__).resolve().parents[2] / "services" / "routing" / "README.md"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"ROUTING_TLS_CERT": "cert.pem"}, "ROUTING_TLS_KEY"),
        ({"ROUTING_JOURNAL_SYNCHRONOUS": "OFF"}, "ROUTING_JOURNAL_SYNCHRONOUS"),
        ({"ROUTING_AUTH_TOKENS": "abc"}, "ROUTING_AUTH_TOKENS"),
        ({"ROUTING_AUTH_TOKENS": "abc=root"}, "ROUTING_AUTH_TOKENS"),
        ({"ROUTING_RESERVE_SHARE": "1.5"}, "ROUTING_"),
        ({"ROUTING_TIERS": "three"}, "ROUTING_TIERS"),
    ],
)
def test_bad_settings_name_the_variable(environ, named):
    with pytest.raises(SettingsError) as err:
        load(RoutingSettings, environ)
    assert named in str(err.value)


def test_tokens_map_to_principals():
    settings = load(RoutingSettings, {"ROUTING_AUTH_TOKENS": "t1=triage, t2=agent:a7 ,t3=supervisor"})
    assert settings.tokens() == {"t1": "triage", "t2": "agent:a7", "t3": "supervisor"}


def test_readme_lists_every_metric_and_setting():
    text = README.read_text()
    standard = {PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR}  # README: one row for all
    assert "`process_*`" in text
    for collector in metrics.REGISTRY._collector_to_names:  # noqa: SLF001 - the registry's own index
        if collector in standard:
            continue
        for name in metrics.REGISTRY._collector_to_names[collector]:  # noqa: SLF001
            base = name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
            base = base.removesuffix("_created")
            if base.endswith("_total") or name == base:
                assert f"`{base}`" in text or f"`{base.removesuffix('_total')}_total`" in text, base
    for env, _default, _help in describe(RoutingSettings):
        assert f"`{env}`" in text, env


def test_priority_bands_are_triages_bands():
    from cctriage_triage.policy import priority_band as triage_band

    bands = {p: metrics.priority_band(p) for p in range(0, 101)}
    assert bands == {p: triage_band(p) for p in range(0, 101)}
    assert (bands[39], bands[40], bands[69], bands[70], bands[84], bands[85]) == (
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
    )
