"""Back-pressure and wake-up of the hand-over queue."""
import threading
import time

from fastsource.base.reader.elements_queue import FutureCompletingBlockingQueue


def test_put_blocks_when_full_until_polled():
    q = FutureCompletingBlockingQueue(capacity=1)
    assert q.put(0, "a")
    done = threading.Event()
    threading.Thread(target=lambda: (q.put(0, "b"), done.set()), daemon=True).start()
    assert not done.wait(0.2)
    assert q.poll() == "a"
    assert done.wait(5)
    assert q.poll() == "b" and q.poll() is None


def test_wake_up_releases_a_blocked_put_without_enqueuing():
    q = FutureCompletingBlockingQueue(capacity=1)
    q.put(0, "a")
    result = []
    t = threading.Thread(target=lambda: result.append(q.put(0, "b")), daemon=True)
    t.start()
    time.sleep(0.1)
    q.wake_up_putter(0)
    t.join(5)
    assert result == [False]
    assert len(q) == 1


def test_available_event_follows_content():
    q = FutureCompletingBlockingQueue(capacity=2)
    assert not q.available.is_set()
    q.put(0, 1)
    assert q.available.is_set()
