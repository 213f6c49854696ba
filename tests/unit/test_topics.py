from pathlib import Path

import pytest
from cctriage_common.settings import SettingsError, load
from cctriage_common.topics import ALL, SUPPORT_EVENTS, SUPPORT_EVENTS_DLQ, TopicSettings, markdown_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "topics.md"


def test_every_topic_is_declared_once_with_retention_and_a_delete_policy():
    names = [spec.name for spec in ALL]
    assert len(names) == len(set(names))
    assert {
        "support-events",
        "support-events-dlq",
        "message-scores",
        "conversation-flags",
        "supervisor-alerts",
        "routing-decisions",
    } == set(names)
    for spec in ALL:
        assert spec.retention_ms > 0
        assert spec.cleanup_policy == "delete"


def test_the_dead_letter_topic_outlives_its_source():
    assert SUPPORT_EVENTS_DLQ.retention_ms > SUPPORT_EVENTS.retention_ms


def test_local_defaults_and_production_settings():
    local = load(TopicSettings, {})
    assert (local.prefix, local.replication_factor, local.min_insync_replicas) == ("", 1, 1)
    production = load(
        TopicSettings, {"CCTRIAGE_TOPIC_REPLICATION_FACTOR": "3", "CCTRIAGE_TOPIC_MIN_INSYNC_REPLICAS": "2"}
    )
    assert SUPPORT_EVENTS.configs(production) == {
        "cleanup.policy": "delete",
        "retention.ms": str(7 * 24 * 3600 * 1000),
        "min.insync.replicas": "2",
    }
    assert SUPPORT_EVENTS.full_name("staging.") == "staging.support-events"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CCTRIAGE_TOPIC_PARTITIONS": "0"}, "CCTRIAGE_TOPIC_PARTITIONS"),
        ({"CCTRIAGE_TOPIC_PARTITIONS": "eight"}, "CCTRIAGE_TOPIC_PARTITIONS"),
        ({"CCTRIAGE_TOPIC_MIN_INSYNC_REPLICAS": "2"}, "CCTRIAGE_TOPIC_MIN_INSYNC_REPLICAS"),
    ],
)
def test_bad_settings_name_the_variable(environ, named):
    with pytest.raises(SettingsError, match=named):
        load(TopicSettings, environ)


def test_docs_table_matches_the_declarations():
    assert markdown_table(TopicSettings()) in DOCS.read_text()
