"""The real Kafka StorageTool formats a log dir with any cluster id the platform may draw,
including ids starting with "-" (once read as an option: `make services-up` failed about once
in 64 fresh starts) and "_"; a failed format shows the tool's own output."""

from __future__ import annotations

import pytest

from ops import services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def jars():
    return services.fetch_kafka_jars()


def properties(tmp_path, port: int = 39092) -> tuple:
    data = tmp_path / "data"
    props = tmp_path / "server.properties"
    props.write_text(services._kafka_properties(data, port))
    return data, props


@pytest.mark.parametrize("first", ["-", "_"])
def test_storage_formats_with_an_id_starting_with(first, jars, tmp_path):
    cluster_id = first + "AAAAAAAAAAAAAAAAAAAAA"  # 22 URL-safe base64 characters, 16 bytes
    data, props = properties(tmp_path)
    services.format_kafka_storage(props, cluster_id)
    meta = (data / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}\n" in meta


def test_a_failed_format_shows_the_tools_own_output(jars, tmp_path):
    data, props = properties(tmp_path)
    props.write_text(props.read_text().replace("node.id=1", "node.id=not-a-number"))
    with pytest.raises(services.ToolError) as caught:
        services.format_kafka_storage(props, services.kafka_cluster_id())
    message = str(caught.value)
    assert "java exited 1" in message and "kafka.tools.StorageTool format" in message
    # the tool's own explanation, not a bare exit status (its stack frames are left out)
    assert "Invalid value not-a-number" in message and "\tat " not in message
    assert not (data / "meta.properties").exists()
