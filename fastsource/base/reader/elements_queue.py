"""The bounded hand-over queue between fetcher threads and the reader: back-pressure in one place."""
from __future__ import annotations

import collections
import threading
from typing import Generic, Optional, TypeVar

T = TypeVar("T")


class FutureCompletingBlockingQueue(Generic[T]):
    """A bounded FIFO. `put` blocks while full unless the putting fetcher is woken up; the consumer
    side never blocks (`poll`) and learns of new elements through `available`, an event that is set
    whenever the queue is non-empty and can be shared by several queues."""

    def __init__(self, capacity: int = 2, available: Optional[threading.Event] = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.available = available or threading.Event()
        self._items: collections.deque[T] = collections.deque()
        self._lock = threading.Condition()
        self._wakeups: set[int] = set()

    def put(self, fetcher_id: int, item: T) -> bool:
        """Enqueue, waiting while full. Returns False (item not enqueued) if the fetcher was woken."""
        with self._lock:
            while len(self._items) >= self.capacity:
                if fetcher_id in self._wakeups:
                    self._wakeups.discard(fetcher_id)
                    return False
                self._lock.wait()
            self._wakeups.discard(fetcher_id)
            self._items.append(item)
            self.available.set()
            return True

    def poll(self) -> Optional[T]:
        """Dequeue without blocking; None when empty."""
        with self._lock:
            if not self._items:
                return None
            item = self._items.popleft()
            self._lock.notify_all()
            return item

    def wake_up_puller(self) -> None:
        self.available.set()

    def wake_up_putter(self, fetcher_id: int) -> None:
        """Make a blocked `put` of this fetcher return False now (or its next blocked put)."""
        with self._lock:
            self._wakeups.add(fetcher_id)
            self._lock.notify_all()

    def is_empty(self) -> bool:
        with self._lock:
            return not self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
