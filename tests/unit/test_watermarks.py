"""Combining split watermarks: hold-back, out-of-orderness, monotonicity, idleness, alignment."""
from fastsource.kafka.split import KafkaPartitionSplit, KafkaPartitionSplitState
from fastsource.base.watermarks import WatermarkStrategy, WatermarkTracker


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def state(partition, max_ts=None, last_activity=100.0):
    s = KafkaPartitionSplitState(KafkaPartitionSplit("t", partition, 0, None))
    s.max_timestamp = max_ts
    s.last_activity = last_activity
    return s


def test_minimum_over_splits_minus_out_of_orderness():
    tracker = WatermarkTracker(WatermarkStrategy(out_of_orderness_ms=10), Clock())
    assert tracker.update([state(0, 1000), state(1, 500)]) == 490


def test_a_split_without_records_holds_the_watermark():
    tracker = WatermarkTracker(WatermarkStrategy(), Clock())
    assert tracker.update([state(0, 1000), state(1)]) is None


def test_watermark_never_moves_back():
    tracker = WatermarkTracker(WatermarkStrategy(), Clock())
    tracker.update([state(0, 1000)])
    assert tracker.update([state(0, 1000), state(1, 200)]) == 1000


def test_idle_split_stops_holding_the_watermark():
    clock = Clock()
    tracker = WatermarkTracker(WatermarkStrategy(idle_timeout_ms=500), clock)
    splits = [state(0, 1000, last_activity=100.0), state(1, None, last_activity=100.0)]
    assert tracker.update(splits) is None
    clock.now = 100.4
    splits[0].last_activity = 100.4
    assert tracker.update(splits) is None
    clock.now = 100.6
    assert tracker.is_idle(splits[1]) and not tracker.is_idle(splits[0])
    assert tracker.update(splits) == 1000
