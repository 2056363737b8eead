"""Split fetchers: a thread per fetcher running a task queue, and the manager that owns them."""
from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Optional

from fastsource.base.reader.elements_queue import FutureCompletingBlockingQueue
from fastsource.base.reader.split_reader import RecordsWithSplitIds, SplitReader
from fastsource.base.split import Split

log = logging.getLogger(__name__)


class SplitFetcherTask:
    """A unit of work on the fetcher thread. `run()` returns False if it was interrupted by a
    wake-up and must run again."""

    def run(self) -> bool:
        raise NotImplementedError

    def wake_up(self) -> None:
        """Interrupt `run()` if it blocks."""


class AddSplitsTask(SplitFetcherTask):
    def __init__(self, fetcher: "SplitFetcher", splits: list[Split]) -> None:
        self.fetcher, self.splits = fetcher, splits

    def run(self) -> bool:
        self.fetcher.split_reader.add_splits(self.splits)
        self.fetcher.assigned.update(s.split_id for s in self.splits)
        return True


class RemoveSplitsTask(SplitFetcherTask):
    def __init__(self, fetcher: "SplitFetcher", split_ids: list[str]) -> None:
        self.fetcher, self.split_ids = fetcher, split_ids

    def run(self) -> bool:
        self.fetcher.split_reader.remove_splits(self.split_ids)
        self.fetcher.assigned.difference_update(self.split_ids)
        return True


class PauseResumeSplitsTask(SplitFetcherTask):
    def __init__(self, fetcher: "SplitFetcher", pause: list[str], resume: list[str]) -> None:
        self.fetcher, self.pause, self.resume = fetcher, pause, resume

    def run(self) -> bool:
        self.fetcher.split_reader.pause_or_resume_splits(self.pause, self.resume)
        return True


class CallTask(SplitFetcherTask):
    """Run a function of the split reader on the fetcher thread, which owns the consumer (commits,
    high-watermark and stats queries); its outcome goes to a future, and never stops the fetcher."""

    def __init__(self, fetcher: "SplitFetcher", fn: Callable[[Any], Any]) -> None:
        self.fetcher, self.fn = fetcher, fn
        self.future: Future = Future()

    def run(self) -> bool:
        try:
            self.future.set_result(self.fn(self.fetcher.split_reader))
        except Exception as exc:
            self.future.set_exception(exc)
        return True


class FetchTask(SplitFetcherTask):
    """Fetch one batch and hand it to the elements queue. A batch whose hand-over was interrupted is
    kept and handed over on the next run: nothing fetched is ever dropped."""

    def __init__(self, fetcher: "SplitFetcher") -> None:
        self.fetcher = fetcher
        self.pending: Optional[RecordsWithSplitIds] = None

    def run(self) -> bool:
        fetcher = self.fetcher
        if self.pending is None:
            started = time.perf_counter()
            try:
                records = fetcher.split_reader.fetch()
            finally:
                fetcher.fetch_time_s += time.perf_counter() - started
            fetcher.observed = fetcher.split_reader.observe()
            fetcher.assigned.difference_update(records.finished_splits)
            if records.is_empty():
                return True
            self.pending = records
        if not fetcher.elements_queue.put(fetcher.fetcher_id, self.pending):
            return False
        self.pending = None
        return True

    def wake_up(self) -> None:
        self.fetcher.split_reader.wake_up()
        self.fetcher.elements_queue.wake_up_putter(self.fetcher.fetcher_id)


class SplitFetcher:
    """A thread that runs queued control tasks first and otherwise fetches while it has splits."""

    def __init__(self, fetcher_id: int, elements_queue: FutureCompletingBlockingQueue,
                 split_reader: SplitReader,
                 on_error: Callable[[BaseException], None]) -> None:
        self.fetcher_id = fetcher_id
        self.elements_queue = elements_queue
        self.split_reader = split_reader
        self.assigned: set[str] = set()
        self.fetch_time_s = 0.0
        # what the consumer last saw (high watermarks, commit counters), taken on this thread after
        # each fetch (no request: local look-ups), so that metrics never touch the consumer
        self.observed: Optional[dict[str, Any]] = None
        self._on_error = on_error
        self._tasks: collections.deque[SplitFetcherTask] = collections.deque()
        self._lock = threading.Condition()
        self._fetch_task = FetchTask(self)
        self._current: Optional[SplitFetcherTask] = None
        self._running = True
        self._thread = threading.Thread(target=self._run, name=f"fastsource-fetcher-{fetcher_id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def enqueue(self, task: SplitFetcherTask) -> None:
        with self._lock:
            self._tasks.append(task)
            self._lock.notify_all()
        self.wake_up()

    def add_splits(self, splits: list[Split]) -> None:
        self.enqueue(AddSplitsTask(self, splits))

    def remove_splits(self, split_ids: list[str]) -> None:
        self.enqueue(RemoveSplitsTask(self, split_ids))

    def pause_or_resume_splits(self, pause: Iterable[str], resume: Iterable[str]) -> None:
        self.enqueue(PauseResumeSplitsTask(self, list(pause), list(resume)))

    def wake_up(self) -> None:
        """Interrupt the running fetch (or queue hand-over) so queued tasks run promptly."""
        current = self._current
        if current is not None:
            current.wake_up()

    def call(self, fn: Callable[[Any], Any]) -> Optional[Future]:
        """Queue `fn(split_reader)` for the fetcher thread; None when the thread no longer runs."""
        task = CallTask(self, fn)
        with self._lock:
            if not self._running or not self._thread.is_alive():
                return None
            self._tasks.append(task)
            self._lock.notify_all()
        self.wake_up()
        return task.future

    def _next_task(self) -> Optional[SplitFetcherTask]:
        with self._lock:
            while self._running:
                if self._tasks:
                    return self._tasks.popleft()
                if self.assigned or self._fetch_task.pending is not None:
                    return self._fetch_task
                self._lock.wait()
            return None

    def _run(self) -> None:
        try:
            while True:
                task = self._next_task()
                if task is None:
                    break
                self._current = task
                try:
                    task.run()
                finally:
                    self._current = None
        except BaseException as exc:
            log.debug("fetcher %d failed", self.fetcher_id, exc_info=True)
            self._on_error(exc)
        finally:
            with self._lock:
                self._running = False
                orphans, self._tasks = list(self._tasks), collections.deque()
            for task in orphans:  # commits queued before the shutdown still go out
                if isinstance(task, CallTask):
                    task.run()
            self.split_reader.close()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the thread and close the consumer; returns when both are done."""
        with self._lock:
            self._running = False
            self._lock.notify_all()
        self.wake_up()
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif not self._thread.ident:
            self.split_reader.close()


class SingleThreadFetcherManager:
    """One fetcher, started with the first splits, multiplexing them all (Kafka's choice: one consumer
    per reader)."""

    def __init__(self, elements_queue: FutureCompletingBlockingQueue,
                 split_reader_factory: Callable[[], SplitReader]) -> None:
        self.elements_queue = elements_queue
        self._factory = split_reader_factory
        self._fetcher: Optional[SplitFetcher] = None
        self._error: Optional[BaseException] = None

    def _on_error(self, exc: BaseException) -> None:
        self._error = exc
        self.elements_queue.wake_up_puller()

    def fetcher(self) -> SplitFetcher:
        if self._fetcher is None:
            self._fetcher = SplitFetcher(0, self.elements_queue, self._factory(), self._on_error)
            self._fetcher.start()
        return self._fetcher

    def add_splits(self, splits: list[Split]) -> None:
        self.fetcher().add_splits(splits)

    def remove_splits(self, split_ids: list[str]) -> None:
        if self._fetcher is not None:
            self._fetcher.remove_splits(split_ids)

    def pause_or_resume_splits(self, pause: Iterable[str], resume: Iterable[str]) -> None:
        if self._fetcher is not None:
            self._fetcher.pause_or_resume_splits(pause, resume)

    def check_errors(self) -> None:
        """Raise, on the reader's thread, the error that stopped a fetcher."""
        if self._error is not None:
            raise self._error

    def call(self, fn: Callable[[Any], Any]) -> Optional[Future]:
        """Run `fn(split_reader)` on the fetcher thread, the consumer's only user; None ("unknown")
        when no fetcher runs (before the first splits, or after a failure)."""
        if self._fetcher is None or self._error is not None:
            return None
        return self._fetcher.call(fn)

    def observed(self) -> Optional[dict[str, Any]]:
        """What the fetcher thread last observed of its consumer (None: unknown, e.g. no fetcher)."""
        if self._fetcher is None or self._error is not None:
            return None
        return self._fetcher.observed

    @property
    def fetch_time_s(self) -> float:
        return self._fetcher.fetch_time_s if self._fetcher is not None else 0.0

    def close(self, timeout: float = 30.0) -> None:
        if self._fetcher is not None:
            self._fetcher.shutdown(timeout)
