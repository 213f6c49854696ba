import pytest
from cctriage_common.broker import BrokerSettings, broker_command
from cctriage_common.settings import SettingsError, load


def test_default_is_tansu_and_external_kafka_is_off():
    settings = load(BrokerSettings, {})
    assert (settings.embedded_broker, settings.bootstrap_servers) == ("tansu", "")


def test_unknown_broker_is_refused_naming_the_variable():
    with pytest.raises(SettingsError, match="CCTRIAGE_EMBEDDED_BROKER"):
        load(BrokerSettings, {"CCTRIAGE_EMBEDDED_BROKER": "kafka"})


@pytest.mark.parametrize("kind", ["tansu", "noida"])
def test_brokers_listen_on_loopback_only(kind, tmp_path):
    command = " ".join(broker_command(kind, "127.0.0.1", 19092, tmp_path))
    assert "0.0.0.0" not in command
    assert "127.0.0.1" in command and "19092" in command
