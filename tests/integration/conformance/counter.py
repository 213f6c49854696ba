"""A faust worker with a changelog-backed table, for the table recovery conformance test.

    COUNTER_APP_ID=... COUNTER_SOURCE=... COUNTER_SINK=... COUNTER_WEB_PORT=... COUNTER_DATA_DIR=... \
        python tests/integration/conformance/counter.py worker -l warn

Counts events per key in a faust table (in-memory store, so after a restart the table exists
only if it was recovered from its changelog topic). Events carry a per-key sequence number;
a redelivered event (sequence already counted) is skipped, as the triage worker skips
redelivered event ids. For every counted event it emits {"seq": n, "count": c} to the sink.
Uses the project's faust settings (cctriage_common.kafka.faust_config).
"""

import os

import faust
from cctriage_common.kafka import KafkaSettings, faust_config
from cctriage_common.settings import load
from cctriage_common.topics import TopicSettings

app = faust.App(
    os.environ["COUNTER_APP_ID"],
    **faust_config(load(KafkaSettings), load(TopicSettings)),
    store="memory://",
    datadir=os.environ["COUNTER_DATA_DIR"],
    web_bind="127.0.0.1",
    web_port=int(os.environ["COUNTER_WEB_PORT"]),
    topic_disable_leader=True,
)
source = app.topic(os.environ["COUNTER_SOURCE"], key_serializer="raw", value_serializer="json")
sink = app.topic(os.environ["COUNTER_SINK"], key_serializer="raw", value_serializer="json")
counted = app.Table("counted", default=int)


@app.agent(source)
async def count_events(stream):
    async for key, event in stream.items():
        name = key.decode()
        if event["seq"] <= counted[name]:
            continue
        counted[name] += 1
        await sink.send(key=key, value={"seq": event["seq"], "count": counted[name]})


if __name__ == "__main__":
    app.main()
