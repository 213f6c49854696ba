"""Writes the Grafana dashboards in deploy/grafana/dashboards/ from the panel lists below.

    python deploy/grafana/build_dashboards.py          # rewrite the JSON files
    python deploy/grafana/build_dashboards.py --check  # exit 1 if a committed file is stale

Dashboards are generated so that every panel has the same datasource, units and layout rules,
and so that a reviewer reads PromQL here instead of 2,000 lines of JSON. The JSON files are
committed (Grafana provisioning reads them); tests/unit/test_deploy_grafana.py checks they
are current, valid and only query metrics the services declare.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "cctriage-prometheus"}
SCHEMA_VERSION = 39  # Grafana 11
RATE = "$__rate_interval"


@dataclass
class Panel:
    title: str
    targets: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | gauge | bargauge
    width: int = 8
    height: int = 8
    description: str = ""
    thresholds: list[tuple[float, str]] = field(default_factory=list)
    max: float | None = None
    stack: bool = False


@dataclass
class Row:
    title: str
    panels: list[Panel]


def _quantiles(metric: str, by: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[tuple[str, str]]:
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        (f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
         f"p{round(q * 100)}{suffix}")
        for q in qs
    ]


SRE = [
    Row("Traffic and lag", [
        Panel("Support events consumed by outcome", [
            (f"sum by (outcome) (rate(cctriage_triage_events_total[{RATE}]))", "{{outcome}}"),
        ], unit="ops", stack=True, description="Events per second through the triage workers."),
        Panel("Consumer lag", [
            ("sum by (topic) (cctriage_triage_consumer_lag_messages)", "{{topic}}"),
        ], unit="short", thresholds=[(1000, "orange")],
            description="Records not yet read, summed over workers. Alert: above 1,000 and rising."),
        Panel("Workers up and ready", [
            ('sum(up{job="cctriage-triage"})', "up"),
            ("sum(cctriage_triage_ready)", "ready"),
            ('sum(up{job="cctriage-routing"})', "router up"),
        ], unit="short", kind="stat"),
        Panel("Routing RPCs by method", [
            (f'sum by (grpc_method) (rate(grpc_server_handled_total{{job="cctriage-routing"}}[{RATE}]))',
             "{{grpc_method}}"),
        ], unit="reqps", width=12, stack=True),
        Panel("Flags and supervisor alerts", [
            (f"sum by (action) (rate(cctriage_triage_flags_total[{RATE}]))", "flag {{action}}"),
            (f"sum by (severity) (rate(cctriage_triage_alerts_total[{RATE}]))", "alert {{severity}}"),
        ], unit="ops", width=12),
    ]),
    Row("Latency", [
        Panel("Event to route (objective p99 100 ms)", _quantiles("cctriage_triage_event_to_route_seconds"),
              unit="s", width=12, thresholds=[(0.1, "red")],
              description="From the event's Kafka timestamp to the router acknowledging the routing call."),
        Panel("Event to flag", _quantiles("cctriage_triage_event_to_flag_seconds"), unit="s", width=12),
        Panel("Model inference per batch",
              _quantiles("cctriage_triage_inference_duration_seconds", qs=(0.5, 0.99)),
              unit="s", description="Duration of one ONNX run (one batch of customer messages)."),
        Panel("Mean inference batch size", [
            (f"sum(rate(cctriage_triage_inference_batch_size_messages_sum[{RATE}])) / "
             f"sum(rate(cctriage_triage_inference_batch_size_messages_count[{RATE}]))", "messages per batch"),
        ], unit="short"),
        Panel("Routing call duration (triage side), p99",
              _quantiles("cctriage_triage_routing_call_duration_seconds", by="rpc", qs=(0.99,)), unit="s"),
        Panel("Routing RPC handling (server side), p99",
              [(f'histogram_quantile(0.99, sum by (le, grpc_method) '
                f'(rate(grpc_server_handling_seconds_bucket{{job="cctriage-routing"}}[{RATE}])))',
                "{{grpc_method}}")], unit="s"),
        Panel("Routing journal group commit", _quantiles("routing_journal_commit_seconds", qs=(0.5, 0.99)),
              unit="s", description="SQLite journal commit: every routing decision waits for it."),
    ]),
    Row("Errors and dead letters", [
        Panel("Dead-lettered events by reason", [
            (f"sum by (reason) (rate(cctriage_triage_dead_letters_total[{RATE}]))", "{{reason}}"),
        ], unit="ops", stack=True,
            description="Invalid events, kept with their reason in support-events-dlq."),
        Panel("Routing call outcomes (triage side)", [
            (f"sum by (outcome) (rate(cctriage_triage_routing_calls_total[{RATE}]))", "{{outcome}}"),
            ("max(cctriage_triage_routing_pending_flags)", "flags held for the router"),
        ], unit="ops"),
        Panel("Routing RPC errors by code", [
            ("sum by (grpc_code) (rate(grpc_server_handled_total"
             f'{{job="cctriage-routing", grpc_code!="OK"}}[{RATE}]))', "{{grpc_code}}"),
        ], unit="reqps"),
        Panel("Routing decisions to Kafka by result", [
            (f"sum by (result) (rate(routing_decisions_published_total[{RATE}]))", "{{result}}"),
        ], unit="ops", description="Audit trail (routing-decisions topic): failed or dropped means a gap."),
        Panel("Model errors", [
            (f"sum(rate(cctriage_triage_model_errors_total[{RATE}]))", "errors/s"),
        ], unit="ops"),
        Panel("Model version", [
            ("count by (version) (cctriage_triage_model_info)", "{{version}}"),
        ], unit="short", kind="stat", description="Workers per loaded model version (two during a rollout)."),
    ]),
    Row("Conversation state and routing handoff", [
        Panel("Conversations in the triage table", [
            ("sum(cctriage_triage_table_conversations)", "all workers"),
            ("cctriage_triage_table_conversations", "{{instance}}"),
        ], unit="short", description="Open conversations plus those closed within the grace. Flat under "
            "steady traffic; a steady climb means conversations are neither closed nor expired."),
        Panel("Conversations evicted by reason", [
            (f"sum by (reason) (rate(cctriage_triage_evicted_conversations_total[{RATE}]))", "{{reason}}"),
        ], unit="ops", stack=True, description="closed: the grace after the close passed; idle: no event "
            "for the idle TTL (withdrawn from routing if it was routed)."),
        Panel("Flags handed to the routing call in process", [
            (f"sum by (result) (rate(cctriage_triage_routing_handoffs_total[{RATE}]))", "{{result}}"),
        ], unit="ops", stack=True, description="called: routed without reading the flag back from Kafka; "
            "left_to_agent: routing failed or is catching up, so route_flags calls in topic order."),
    ]),
    Row("Resources", [
        Panel("CPU per process", [
            (f'rate(process_cpu_seconds_total{{job=~"cctriage-.*"}}[{RATE}])', "{{job}} {{instance}}"),
        ], unit="percentunit", width=12, description="Cores used; 1.0 is one full core."),
        Panel("Resident memory per process", [
            ('process_resident_memory_bytes{job=~"cctriage-.*"}', "{{job}} {{instance}}"),
        ], unit="bytes", width=12),
    ]),
]

SUPERVISOR = [
    Row("Customers", [
        Panel("Stressed share of customer messages", [
            (f'1 - sum(rate(cctriage_triage_message_stress_ratio_bucket{{le="0.7"}}[{RATE}])) / '
             f"sum(rate(cctriage_triage_message_stress_ratio_count[{RATE}]))", "stress above 0.7"),
        ], unit="percentunit", max=1, width=8),
        Panel("Stress distribution (messages in the last hour)", [
            ("sum by (le) (increase(cctriage_triage_message_stress_ratio_bucket[1h]))", "{{le}}"),
        ], unit="short", kind="bargauge", width=8,
            description="Cumulative: messages with stress at or below each bound."),
        Panel("Sentiment mix", [
            (f"sum by (sentiment) (rate(cctriage_triage_message_sentiment_ratio_sum[{RATE}])) / "
             f"ignoring(sentiment) group_left sum(rate(cctriage_triage_message_stress_ratio_count[{RATE}]))",
             "{{sentiment}}"),
        ], unit="percentunit", max=1, stack=True, width=8),
        Panel("Flags by priority band", [
            (f'sum by (band) (rate(cctriage_triage_flags_total{{action!="withdrawn"}}[{RATE}]))', "{{band}}"),
        ], unit="ops", stack=True, width=12, description="New and changed flags per second."),
        Panel("Supervisor alerts", [
            (f"sum by (severity) (rate(cctriage_triage_alerts_total[{RATE}]))", "{{severity}}"),
        ], unit="ops", width=12),
    ]),
    Row("Queue and agents", [
        Panel("Waiting conversations by priority", [
            ("sum by (priority_band) (routing_queue_depth_conversations)", "{{priority_band}}"),
        ], unit="short", stack=True),
        Panel("Wait before assignment, p90 by priority", [
            ("histogram_quantile(0.9, sum by (le, priority_band) "
             f"(rate(routing_wait_seconds_bucket[{RATE}])))", "{{priority_band}}"),
        ], unit="s"),
        Panel("Stressed customers: wait p90 (medium, high, critical)", [
            ("histogram_quantile(0.9, sum by (le) (rate(routing_wait_seconds_bucket"
             '{priority_band=~"medium|high|critical"}[15m])))', "p90 over 15 min"),
        ], unit="s", kind="stat", thresholds=[(30, "orange"), (60, "red")],
            description="From flag to accepted assignment. Alert: a stressed customer waited over 60 s."),
        Panel("Senior occupancy", [
            ("max(routing_senior_occupancy_ratio)", "tier 1"),
        ], unit="percentunit", kind="gauge", max=1, thresholds=[(0.8, "orange"), (0.95, "red")]),
        Panel("Agents by tier and state", [
            ("sum by (tier, state) (routing_agents)", "tier {{tier}} {{state}}"),
        ], unit="short", width=16, stack=True),
    ]),
    Row("Routing outcomes", [
        Panel("Assignments by tier", [
            (f"sum by (tier) (rate(routing_assignments_total[{RATE}]))", "tier {{tier}}"),
        ], unit="ops", stack=True),
        Panel("Assignments by reason", [
            (f"sum by (reason) (rate(routing_assignments_total[{RATE}]))", "{{reason}}"),
        ], unit="ops", stack=True),
        Panel("Offers by outcome", [
            (f"sum by (outcome) (rate(routing_offers_total[{RATE}]))", "{{outcome}}"),
        ], unit="ops", description="Offered, accepted, declined, timed out."),
    ]),
]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    steps = [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in panel.thresholds]
    defaults: dict = {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if panel.max is not None:
        defaults["min"], defaults["max"] = 0, panel.max
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 20 if panel.stack else 5,
            "showPoints": "never", "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line" if panel.thresholds else "off"},
        }
    options: dict = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                     "tooltip": {"mode": "multi", "sort": "desc"}}
    if panel.kind in ("stat", "gauge", "bargauge"):
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                   "orientation": "horizontal" if panel.kind == "bargauge" else "auto"}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [
            {"datasource": DATASOURCE, "refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
             "range": True, **({"format": "heatmap"} if panel.kind == "bargauge" else {})}
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }


def dashboard(uid: str, title: str, description: str, rows: list[Row], tags: list[str]) -> dict:
    panels: list[dict] = []
    panel_id, y = 1, 0
    for row in rows:
        panels.append({"id": panel_id, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        panel_id, y, x, row_height = panel_id + 1, y + 1, 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id, x, row_height = panel_id + 1, x + panel.width, max(row_height, panel.height)
        y += row_height
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["cctriage", *tags],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "links": [],
        "panels": panels,
    }


DASHBOARDS = {
    "cctriage-sre.json": dashboard(
        "cctriage-sre", "cctriage / SRE",
        "Is the pipeline keeping up? Traffic and lag, latency against the 100 ms objective, errors, "
        "dead letters, resources.", SRE, ["sre"]),
    "cctriage-supervisor.json": dashboard(
        "cctriage-supervisor", "cctriage / Supervisor",
        "Are stressed customers reaching senior agents? Stress and flags, queue and wait by priority, "
        "senior occupancy, routing outcomes.", SUPERVISOR, ["supervisor"]),
}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name], indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = parser.parse_args(argv)
    stale = []
    for name in DASHBOARDS:
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != render(name):
                stale.append(name)
        else:
            path.write_text(render(name))
    if stale:
        print(f"stale dashboards (run python {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
