"""topic_specs: names, partition counts and configs of the pipeline's topics."""

from __future__ import annotations

from fairuse.settings import TOPIC_NAMES, KafkaSettings
from fairuse.topics import topic_specs


def test_one_spec_per_topic_name_with_the_prefix() -> None:
    specs = topic_specs(KafkaSettings(topic_prefix="x."))

    assert [s.name for s in specs] == [f"x.{name}" for name in TOPIC_NAMES]


def test_data_topics_are_co_partitioned_with_events_and_policy_is_one_compacted_partition() -> None:
    specs = {s.name: s for s in topic_specs(KafkaSettings(events_partitions=12))}

    policy = specs.pop("fairuse.policy")
    assert (policy.partitions, policy.configs["cleanup.policy"]) == (1, "compact")
    state = specs.pop("fairuse.notify-deliveries")
    assert (state.partitions, state.configs["cleanup.policy"]) == (12, "compact,delete")
    assert {s.partitions for s in specs.values()} == {12}
    assert all("cleanup.policy" not in s.configs for s in specs.values())


def test_every_topic_stamps_records_on_append_and_uses_the_replication_factor() -> None:
    specs = topic_specs(KafkaSettings(replication_factor=3))

    assert {s.configs["message.timestamp.type"] for s in specs} == {"LogAppendTime"}
    assert {s.replication_factor for s in specs} == {3}
