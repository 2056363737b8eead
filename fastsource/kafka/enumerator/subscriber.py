"""What a source subscribes to: a topic list, a topic pattern, or an explicit set of partitions."""
from __future__ import annotations

import re
from typing import Iterable, Protocol

from fastsource.kafka.admin import KafkaAdmin, TopicPartitionKey
from fastsource.errors import ConfigError, UnknownTopicError


class KafkaSubscriber(Protocol):
    def partitions(self, admin: KafkaAdmin, strict: bool = True) -> set[TopicPartitionKey]:
        """The partitions the subscription covers now; `strict` makes a missing named topic an error
        (at start-up) rather than a partition set without it (a deletion seen by discovery)."""


class TopicListSubscriber:
    """Every partition of the listed topics; each topic must exist."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = list(dict.fromkeys(topics))
        if not self.topics or not all(isinstance(t, str) and t for t in self.topics):
            raise ConfigError(f"topics must be a non-empty list of topic names, got {topics!r}")

    def partitions(self, admin: KafkaAdmin, strict: bool = True) -> set[TopicPartitionKey]:
        existing = admin.topics(wanted=set(self.topics).__contains__)
        missing = [t for t in self.topics if t not in existing]
        if missing and strict:
            raise UnknownTopicError(f"topic{'s' if len(missing) > 1 else ''} "
                                    f"{', '.join(map(repr, missing))} not found on {admin.bootstrap_servers}")
        return {(t, p) for t in self.topics for p in range(existing.get(t, 0))}


class TopicPatternSubscriber:
    """Every partition of every topic whose whole name matches the regular expression."""

    def __init__(self, pattern: str) -> None:
        try:
            self.pattern = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"invalid topic_pattern {pattern!r}: {exc}") from exc

    def _matches(self, topic: str) -> bool:
        return self.pattern.fullmatch(topic) is not None

    def partitions(self, admin: KafkaAdmin, strict: bool = True) -> set[TopicPartitionKey]:
        return {(t, p) for t, n in admin.topics(wanted=self._matches).items()
                if self._matches(t)
                for p in range(n)}


class PartitionSetSubscriber:
    """Exactly the given partitions; each must exist."""

    def __init__(self, partitions: Iterable[TopicPartitionKey]) -> None:
        self.wanted = {(str(t), int(p)) for t, p in partitions}
        if not self.wanted:
            raise ConfigError("partitions must list at least one (topic, partition)")

    def partitions(self, admin: KafkaAdmin, strict: bool = True) -> set[TopicPartitionKey]:
        existing = admin.topics(wanted={t for t, _ in self.wanted}.__contains__)
        missing = sorted(tp for tp in self.wanted if existing.get(tp[0], 0) <= tp[1])
        if missing and strict:
            raise UnknownTopicError("partition(s) not found on " + admin.bootstrap_servers + ": "
                                    + ", ".join(f"{t}[{p}]" for t, p in missing))
        return self.wanted - set(missing)
