import pytest
from cctriage_common.kafka import KafkaSettings, consumer_config, faust_config, producer_config
from cctriage_common.settings import SettingsError, load
from cctriage_common.topics import TopicSettings


def test_defaults_are_the_embedded_broker_workarounds():
    settings = load(KafkaSettings, {})
    assert producer_config(settings)["max_batch_size"] == 1
    consumer = consumer_config(settings, "g")
    assert consumer["enable_auto_commit"] is False
    assert consumer["session_timeout_ms"] == 6000
    faust = faust_config(settings, TopicSettings(partitions=4))
    assert faust["producer_max_batch_size"] == 1
    assert faust["broker_session_timeout"] == 6.0
    assert faust["processing_guarantee"] == "at_least_once"
    assert faust["topic_partitions"] == 4


def test_production_overrides_and_several_brokers():
    settings = load(
        KafkaSettings,
        {"KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092", "CCTRIAGE_KAFKA_PRODUCER_MAX_BATCH_BYTES": "65536"},
    )
    assert producer_config(settings)["max_batch_size"] == 65536
    assert (
        faust_config(settings, TopicSettings())["broker"]
        == "cctriage-kafka://k1:9092;cctriage-kafka://k2:9092"
    )


def test_heartbeat_must_fit_the_session():
    with pytest.raises(SettingsError, match="CCTRIAGE_KAFKA_HEARTBEAT_INTERVAL_MS"):
        load(KafkaSettings, {"CCTRIAGE_KAFKA_HEARTBEAT_INTERVAL_MS": "5000"})
