# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled Kafka consumer: one librdkafka consumer per reader and its fetch loop, filling the
shared Arrow builders (fastsource/formats/_builders.pxd).

Everything between `rd_kafka_consume_batch_queue` and a finished set of Arrow buffers runs without the
GIL and without a Python object per record. The Python layer (the Kafka split reader) owns the control
decisions and the words of its errors: this unit fetches, copies, keeps the per-split fetch positions,
and reports errors as codes of `fastsource.errors.ERROR_TABLE` with librdkafka's reason (`CoreError`).
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, INT32_MAX
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memset, strcmp, strlen, strstr
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from fastsource.formats._builders cimport (DEC_OK, DEC_TOO_LARGE, NODE_BINARY, NODE_FIXED, NODE_LIST,
                                           NODE_STRUCT, BatchLayout, node_close_list, node_mark,
                                           node_put_bytes, node_put_empty, node_put_i8, node_put_i32,
                                           node_put_i64, node_truncate)

from fastsource.formats._builders import release_pool, string_array

import pyarrow as pa

from fastsource.errors import CoreError, authentication_failure
from fastsource.kafka.librdkafka_log import publish_log_lines

TIMESTAMP_TYPE = pa.timestamp("ms", tz="UTC")
HEADERS_TYPE = pa.list_(pa.struct([pa.field("key", pa.string()), pa.field("value", pa.binary())]))

# The librdkafka the unit was compiled for (includes/rdkafka_abi.h), checked against the library
# loaded when fastsource is imported (fastsource.kafka.librdkafka.load_consumer).
BUILT_RDKAFKA_VERSION = RD_KAFKA_VERSION
BUILT_RDKAFKA_ABI = RD_KAFKA_ABI_SONAME

# The codes this unit reports or acts on, by name (a test checks them against the error table, and
# librdkafka's against confluent-kafka's names).
CODES = {"_TRANSPORT": RD_KAFKA_RESP_ERR__TRANSPORT, "_PARTITION_EOF": RD_KAFKA_RESP_ERR__PARTITION_EOF,
         "_UNKNOWN_PARTITION": RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
         "_UNKNOWN_TOPIC": RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
         "_ALL_BROKERS_DOWN": RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, "_SSL": RD_KAFKA_RESP_ERR__SSL,
         "_AUTHENTICATION": RD_KAFKA_RESP_ERR__AUTHENTICATION, "_FATAL": RD_KAFKA_RESP_ERR__FATAL,
         "_AUTO_OFFSET_RESET": RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET,
         "OFFSET_OUT_OF_RANGE": RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE,
         "UNKNOWN_TOPIC_OR_PART": RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
         "MSG_SIZE_TOO_LARGE": RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
         "FS_OUT_OF_MEMORY": FS_OUT_OF_MEMORY, "FS_COLUMN_TOO_LARGE": FS_COLUMN_TOO_LARGE}


def raw_schema(bint include_headers=False):
    """Schema of the batches `Consumer.fetch` builds (keys and values still raw bytes)."""
    fields = [
        pa.field("topic", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", TIMESTAMP_TYPE),
        pa.field("timestamp_type", pa.int8(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
    ]
    if include_headers:
        fields.append(pa.field("headers", HEADERS_TYPE, nullable=False))
    return pa.schema(fields)


cdef list raw_layout(bint include_headers):
    """The builders' layout of a raw batch, one node per COL_* (see formats/_builders.pyx); the topic
    column is built as its int32 dictionary indices."""
    layout = [(NODE_FIXED, 4, 0, [], pa.int32(), None, -1),
              (NODE_FIXED, 4, 0, [], pa.int32(), None, -1),
              (NODE_FIXED, 8, 0, [], pa.int64(), None, -1),
              (NODE_FIXED, 8, 1, [], TIMESTAMP_TYPE, None, -1),
              (NODE_FIXED, 1, 0, [], pa.int8(), None, -1),
              (NODE_BINARY, 0, 1, [], pa.binary(), None, -1),
              (NODE_BINARY, 0, 1, [], pa.binary(), None, -1)]
    if include_headers:
        layout += [(NODE_LIST, 0, 0, [COL_HEADER], HEADERS_TYPE, None, -1),
                   (NODE_STRUCT, 0, 0, [COL_HEADER_KEY, COL_HEADER_VALUE], HEADERS_TYPE.value_type,
                    None, -1),
                   (NODE_BINARY, 0, 0, [], pa.string(), None, -1),
                   (NODE_BINARY, 0, 1, [], pa.binary(), None, -1)]
    return layout


def librdkafka_version() -> str:
    """Version string of the librdkafka this process runs."""
    return rd_kafka_version_str().decode()


def librdkafka_version_number() -> int:
    """`rd_kafka_version()` of the librdkafka this process runs (0xMMmmrrxx)."""
    return rd_kafka_version()


cdef inline int64_t now_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t> ts.tv_sec * 1000 + ts.tv_nsec // 1000000


cdef void _error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) noexcept nogil:
    cdef CoreState *st = <CoreState *> opaque
    st.last_error = err
    if err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN and st.down_since_ms < 0:
        st.down_since_ms = now_ms()
    if err == RD_KAFKA_RESP_ERR__FATAL:
        st.fatal = 1
    if reason != NULL:
        note_oversize(st, reason, strlen(reason))
        note_client_error(st, err, reason, strlen(reason))


cdef bint note_client_error(CoreState *st, int err, const char *reason, size_t n) noexcept nogil:
    """Keep an error that may be the broker refusing the client's security (a SASL or TLS code, or a
    transport error, which is how librdkafka reports a failed TLS handshake), for `fetch` to have
    `authentication_failure` judge; returns whether it was one of those."""
    if (err != RD_KAFKA_RESP_ERR__AUTHENTICATION and err != RD_KAFKA_RESP_ERR__SSL
            and err != RD_KAFKA_RESP_ERR__TRANSPORT):
        return 0
    if st.client_count < CLIENT_ERRORS:
        st.client_codes[st.client_count] = err
        copy_text(st.client_texts[st.client_count], ERROR_TEXT_SIZE, reason, n)
        st.client_count += 1
    return 1


cdef inline size_t copy_text(char *dst, size_t capacity, const char *src, size_t n) noexcept nogil:
    """Copy at most `capacity - 1` bytes of `src[:n]` into `dst`, NUL-terminated; returns the length."""
    if n > capacity - 1:
        n = capacity - 1
    if n > 0:
        memcpy(dst, src, n)
    dst[n] = 0
    return n


cdef void _log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) noexcept nogil:
    cdef CoreState *st = <CoreState *> rd_kafka_opaque(rk)
    cdef size_t n
    cdef char *line
    if st == NULL:
        return
    if st.log_count >= LOG_LINES:
        st.logs_dropped += 1
        return
    line = st.log_lines[st.log_count]
    n = copy_text(line, 33, fac, strlen(fac))
    line[n] = 58   # ':'
    line[n + 1] = 32
    copy_text(line + n + 2, LOG_LINE_SIZE - n - 2, buf, strlen(buf))
    st.log_levels[st.log_count] = level
    st.log_count += 1


cdef bint note_oversize(CoreState *st, const char *reason, size_t n) noexcept nogil:
    """Whether `reason` says a fetch response exceeded receive.message.max.bytes; records it if so.

    A record batch larger than the fetch limits makes the broker's whole response too large for
    librdkafka, which drops the connection and fetches the same batch again, forever. It tells the
    application either through the error callback or as an error event in the consumer queue.
    """
    cdef char text[256]
    n = copy_text(text, sizeof(text), reason, n)
    if strstr(text, "receive.message.max.bytes") == NULL:
        return 0
    if not st.oversize:
        memcpy(st.error_text, text, n + 1)
        st.oversize = 1
    return 1


cdef void _commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t *offsets, void *opaque) noexcept nogil:
    cdef CoreState *st = <CoreState *> opaque
    if err == RD_KAFKA_RESP_ERR_NO_ERROR:
        st.commits_ok += 1
    else:
        st.commits_failed += 1
        st.last_commit_err = err


cdef class Consumer:
    """One librdkafka consumer multiplexing every split of one reader.

    Splits are added with concrete start offsets and an exclusive stop offset (-1: unbounded). `fetch`
    builds one Arrow record batch from whatever the consumer delivers within the batch limits and
    reports, per split, how far the batch goes, and which splits finished.
    """
    def __cinit__(self):
        self.rk = NULL
        self.queue = NULL
        self.slots = NULL
        self.free_slots = self.touched_slots = self.finished_slots = NULL
        self.topics = NULL
        self.rkt_keys = NULL
        self.rkt_values = NULL
        self.last_slot = -1
        self.state.down_since_ms = -1
        self.nodes = NULL

    def __init__(self, config: dict, include_headers: bool = False, broker_timeout_ms: int = 60000,
                 include_key: bool = True, include_value: bool = True):
        cdef char errstr[512]
        cdef rd_kafka_conf_t *conf = rd_kafka_conf_new()
        if conf == NULL:
            raise MemoryError()
        self._ids = []
        self._index = {}
        self._topics = []
        self._topic_index = {}
        self._topic_dictionary = string_array([])
        self._pending_error = None
        self.include_headers = include_headers
        self.include_key = include_key
        self.include_value = include_value
        self.broker_timeout_ms = broker_timeout_ms
        for name, value in config.items():
            if rd_kafka_conf_set(conf, str(name).encode(), str(value).encode(), errstr,
                                 sizeof(errstr)) != RD_KAFKA_CONF_OK:
                rd_kafka_conf_destroy(conf)
                raise ValueError(f"invalid Kafka client property {name}={value!r}: "
                                 f"{errstr.decode(errors='replace')}")
        self.own_logs = "log.queue" not in config
        if self.own_logs:
            # Log lines are served by the fetch thread's consume calls (one thread at a time, as
            # the log buffer needs), not printed by librdkafka's threads to stderr. A user who sets
            # log.queue keeps librdkafka's own logging.
            rd_kafka_conf_set(conf, b"log.queue", b"true", errstr, sizeof(errstr))
            rd_kafka_conf_set_log_cb(conf, _log_cb)
        rd_kafka_conf_set_opaque(conf, &self.state)
        rd_kafka_conf_set_error_cb(conf, _error_cb)
        rd_kafka_conf_set_offset_commit_cb(conf, _commit_cb)
        self.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr))
        if self.rk == NULL:
            raise ValueError(f"cannot create Kafka consumer: {errstr.decode(errors='replace')}")
        rd_kafka_poll_set_consumer(self.rk)
        self.queue = rd_kafka_queue_get_consumer(self.rk)
        if self.own_logs:
            rd_kafka_set_log_queue(self.rk, self.queue)
        self.schema = raw_schema(include_headers)
        self._layout = BatchLayout(raw_layout(include_headers))
        self.ncolumns = COL_HEADERS + 1 if include_headers else COL_VALUE + 1
        self._new_columns()

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        """Free everything. The handles are cleared before the GIL is released to close the consumer,
        so no other thread can reach a consumer being destroyed."""
        cdef int i
        cdef rd_kafka_t *rk = self.rk
        cdef rd_kafka_queue_t *q = self.queue
        self.rk = NULL
        self.queue = NULL
        for i in range(self.msg_done, self.msg_cnt):
            rd_kafka_message_destroy(self.msgs[i])
        self.msg_pos = self.msg_cnt = self.msg_done = 0
        if q != NULL:
            rd_kafka_queue_destroy(q)
        if rk != NULL:
            with nogil:
                rd_kafka_consumer_close(rk)
                rd_kafka_destroy(rk)
        free(self.slots)
        free(self.free_slots)
        free(self.touched_slots)
        free(self.finished_slots)
        self.slots = NULL
        self.free_slots = self.touched_slots = self.finished_slots = NULL
        if self.topics != NULL:
            for i in range(self.ntopics):
                free(self.topics[i].name)
                free(self.topics[i].part_slot)
            free(self.topics)
            self.topics = NULL
        free(self.rkt_keys)
        free(self.rkt_values)
        self.rkt_keys = NULL
        self.rkt_values = NULL
        self._columns = None
        self.nodes = NULL

    def close(self) -> None:
        """Leave the assignment, close the consumer and free every buffer (with the blocks the
        builders keep for later batches). Idempotent."""
        self._release()
        release_pool()
        self._flush_logs()

    cdef void _check_open(self) except *:
        if self.rk == NULL:
            raise RuntimeError("the consumer is closed")

    # ------------------------------------------------------------------ splits

    def add_splits(self, splits) -> None:
        """Start fetching splits `[(split_id, topic, partition, start, stop)]`: each from `start` up
        to `stop` (exclusive, -1: unbounded). One incremental assignment adds their partitions; the
        partitions being read already keep their positions and fetched records.

        A split whose start is at or past its stop is finished at once, without a fetch. A partition
        is read by one split at a time: a split of a partition that another split of this consumer
        is reading is refused, as is a split id already being read.
        """
        cdef Slot *s
        cdef int i, t
        self._check_open()
        seen = set()
        for split_id, topic, partition, start, stop in splits:
            i = self._index.get(split_id, -1)
            if split_id in seen or (i >= 0 and self.slots[i].active):
                raise ValueError(f"split {split_id} is already assigned to this reader")
            t = self._topic_index.get(topic, -1)
            if (topic, partition) in seen or (t >= 0 and 0 <= partition < self.topics[t].nparts
                                             and self.topics[t].part_slot[partition] >= 0):
                raise ValueError(f"split {split_id}: {topic}[{partition}] is already being read by "
                                 "another split of this reader")
            if partition < 0:
                raise ValueError(f"split {split_id}: invalid partition {partition}")
            seen.add(split_id)
            seen.add((topic, partition))
        started = []
        for split_id, topic, partition, start, stop in splits:
            i = self._new_slot(split_id, topic, partition)
            s = &self.slots[i]
            s.next_offset = start
            s.stop_offset = stop
            if stop >= 0 and start >= 0 and start >= stop:
                s.finished = 1
                self.finished_slots[self.nfinished] = i
                self.nfinished += 1
                continue
            s.active = 1
            self.fetching += 1
            self.topics[s.topic_index].part_slot[partition] = i
            started.append(i)
        self._change_assignment(started, 1)

    cdef int _new_slot(self, str split_id, str topic, int partition) except -1:
        """A cleared slot (a free one, or a new one) for `split_id`, its topic's partition table
        grown to hold `partition`."""
        cdef int i, t, n
        cdef Topic *tp
        cdef int32_t *grown
        t = self._topic_index.get(topic, -1)
        if t < 0:
            t = self._new_topic(topic)
        tp = &self.topics[t]
        if partition >= tp.nparts:
            n = partition + 1 if partition + 1 > 2 * tp.nparts else 2 * tp.nparts
            grown = <int32_t *> realloc(tp.part_slot, n * sizeof(int32_t))
            if grown == NULL:
                raise MemoryError()
            for i in range(tp.nparts, n):
                grown[i] = -1
            tp.part_slot = grown
            tp.nparts = n
        if self.nfree > 0:
            self.nfree -= 1
            i = self.free_slots[self.nfree]
        else:
            if self.nslots == self.capslots:
                self._grow_slots()
            i = self.nslots
            self.nslots += 1
            self._ids.append(None)
        memset(&self.slots[i], 0, sizeof(Slot))
        self.slots[i].topic_index = t
        self.slots[i].partition = partition
        self.slots[i].batch_max_ts = -1
        self._index[split_id] = i
        self._ids[i] = split_id
        return i

    cdef void _grow_slots(self) except *:
        cdef int cap = self.capslots * 2 if self.capslots else 16
        cdef Slot *slots = <Slot *> realloc(self.slots, cap * sizeof(Slot))
        if slots == NULL:
            raise MemoryError()
        self.slots = slots
        if (self._grow_list(&self.free_slots, cap) < 0 or self._grow_list(&self.touched_slots, cap) < 0
                or self._grow_list(&self.finished_slots, cap) < 0):
            raise MemoryError()
        self.capslots = cap

    cdef int _grow_list(self, int **lst, int cap) noexcept:
        cdef int *grown = <int *> realloc(lst[0], cap * sizeof(int))
        if grown == NULL:
            return -1
        lst[0] = grown
        return 0

    cdef int _new_topic(self, str topic) except -1:
        """Register a topic: its name for the batches' dictionary and for message look-ups."""
        cdef bytes name = topic.encode()
        cdef int cap
        cdef Topic *grown
        if self.ntopics == self.captopics:
            cap = self.captopics * 2 if self.captopics else 4
            grown = <Topic *> realloc(self.topics, cap * sizeof(Topic))
            if grown == NULL:
                raise MemoryError()
            self.topics = grown
            self.captopics = cap
        memset(&self.topics[self.ntopics], 0, sizeof(Topic))
        self.topics[self.ntopics].name = <char *> malloc(len(name) + 1)
        if self.topics[self.ntopics].name == NULL:
            raise MemoryError()
        memcpy(self.topics[self.ntopics].name, <char *> name, len(name) + 1)
        if 2 * (self.ntopics + 1) > self.rkt_cap:
            self._grow_rkt_table(4 * (self.ntopics + 1))
        self._topic_index[topic] = self.ntopics
        self._topics.append(topic)
        self._topic_dictionary = string_array(self._topics)
        self.ntopics += 1
        return self.ntopics - 1

    cdef void _grow_rkt_table(self, int at_least) except *:
        """A larger handle table (a power of two), the known handles put back."""
        cdef int cap = 8
        cdef int i
        while cap < at_least:
            cap *= 2
        cdef rd_kafka_topic_t **keys = <rd_kafka_topic_t **> calloc(cap, sizeof(rd_kafka_topic_t *))
        cdef int *values = <int *> malloc(cap * sizeof(int))
        if keys == NULL or values == NULL:
            free(keys)
            free(values)
            raise MemoryError()
        free(self.rkt_keys)
        free(self.rkt_values)
        self.rkt_keys = keys
        self.rkt_values = values
        self.rkt_cap = cap
        for i in range(self.ntopics):
            if self.topics[i].rkt != NULL:
                self._rkt_put(self.topics[i].rkt, i)

    cdef void _rkt_put(self, rd_kafka_topic_t *rkt, int topic) noexcept nogil:
        cdef size_t h = (<size_t> rkt >> 4) * <size_t> 0x9E3779B97F4A7C15
        cdef int mask = self.rkt_cap - 1
        cdef int i = <int> (h >> 40) & mask
        while self.rkt_keys[i] != NULL and self.rkt_keys[i] != rkt:
            i = (i + 1) & mask
        self.rkt_keys[i] = rkt
        self.rkt_values[i] = topic

    cdef int _topic_of(self, rd_kafka_topic_t *rkt) noexcept nogil:
        """Index of the topic of a message's handle, or -1 for a topic this consumer does not read.
        A handle seen for the first time is matched by name (once per topic)."""
        cdef size_t h
        cdef int mask, i, t
        cdef const char *name
        if rkt == NULL or self.rkt_cap == 0:
            return -1
        h = (<size_t> rkt >> 4) * <size_t> 0x9E3779B97F4A7C15
        mask = self.rkt_cap - 1
        i = <int> (h >> 40) & mask
        while self.rkt_keys[i] != NULL:
            if self.rkt_keys[i] == rkt:
                return self.rkt_values[i]
            i = (i + 1) & mask
        name = rd_kafka_topic_name(rkt)
        for t in range(self.ntopics):
            if self.topics[t].rkt == NULL and strcmp(self.topics[t].name, name) == 0:
                self.topics[t].rkt = rkt
                self._rkt_put(rkt, t)
                return t
        return -1

    cdef void _release_slot(self, int i) noexcept:
        """Forget slot `i` (finished and reported, or removed) and keep it for reuse."""
        cdef Slot *s = &self.slots[i]
        cdef Topic *tp = &self.topics[s.topic_index]
        if s.partition < tp.nparts and tp.part_slot[s.partition] == i:
            tp.part_slot[s.partition] = -1
        split_id = self._ids[i]
        if self._index.get(split_id) == i:
            del self._index[split_id]
        self._ids[i] = None
        s.active = 0
        s.finished = 0
        if self.last_slot == i:
            self.last_slot = -1
        self.free_slots[self.nfree] = i
        self.nfree += 1

    def remove_splits(self, split_ids) -> None:
        """Stop fetching these splits; records of theirs still queued are dropped. The other
        partitions keep their positions and fetched records."""
        cdef int i
        unassign = []
        for split_id in split_ids:
            i = self._index.get(split_id, -1)
            if i < 0 or not self.slots[i].active:
                continue
            self._deactivate(i)
            if self.slots[i].assigned:
                unassign.append(i)
            else:
                self._release_slot(i)
        self._change_assignment(unassign, 0)
        for i in unassign:
            self._release_slot(i)

    cdef void _deactivate(self, int i) noexcept nogil:
        if self.slots[i].active and not self.slots[i].paused:
            self.fetching -= 1
        self.slots[i].active = 0

    def pause_or_resume(self, pause, resume) -> None:
        """Pause the splits in `pause` and resume those in `resume`; a resumed split refetches
        from its next offset, so nothing queued while it was paused is lost."""
        cdef int i
        changes = ([], [])
        for ids, flag in ((pause, 1), (resume, 0)):
            for split_id in ids:
                i = self._index.get(split_id, -1)
                if i >= 0 and self.slots[i].active and self.slots[i].paused != flag:
                    self.slots[i].paused = flag
                    self.fetching += -1 if flag else 1
                    changes[flag].append(i)
        self._change_assignment(changes[1], 0)
        self._change_assignment(changes[0], 1)

    cdef void _change_assignment(self, list slots, bint add) except *:
        """Add the partitions of `slots` to the consumer's assignment (at their next offsets) or
        take them out of it, incrementally: the rest of the assignment is left as it is."""
        cdef rd_kafka_topic_partition_list_t *lst
        cdef rd_kafka_topic_partition_t *tp
        cdef rd_kafka_error_t *error
        cdef Slot *s
        cdef int i
        if not slots:
            return
        lst = rd_kafka_topic_partition_list_new(len(slots))
        if lst == NULL:
            raise MemoryError()
        for i in slots:
            s = &self.slots[i]
            tp = rd_kafka_topic_partition_list_add(lst, self.topics[s.topic_index].name, s.partition)
            tp.offset = s.next_offset
        with nogil:
            if add:
                error = rd_kafka_incremental_assign(self.rk, lst)
            else:
                error = rd_kafka_incremental_unassign(self.rk, lst)
        rd_kafka_topic_partition_list_destroy(lst)
        if error != NULL:
            code = rd_kafka_error_code(error)
            reason = rd_kafka_error_string(error).decode(errors="replace")
            rd_kafka_error_destroy(error)
            raise CoreError(code, rd_kafka_err2name(code).decode(), reason)
        for i in slots:
            self.slots[i].assigned = add

    # ------------------------------------------------------------------ fetch

    cdef void _new_columns(self) except *:
        """Fresh builders for the next batch, reserved for as many rows as the last one had (see
        formats/_builders.pyx). The old ones are replaced only once the new ones exist, so a failure
        here leaves the builders as they were."""
        cdef ColumnSet columns = ColumnSet(self._layout, self.last_rows)
        self._columns = columns
        self.nodes = columns.nodes
        self.data_bytes = 0

    cdef int _find_slot(self, rd_kafka_message_t *m) noexcept nogil:
        """The active split of a message's partition, or -1: by index, never by a scan of slots."""
        cdef int i = self.last_slot
        cdef int t
        cdef Slot *s
        if i >= 0:
            s = &self.slots[i]
            if s.active and s.partition == m.partition and m.rkt != NULL \
                    and self.topics[s.topic_index].rkt == m.rkt:
                return i
        t = self._topic_of(m.rkt)
        if t < 0 or m.partition < 0 or m.partition >= self.topics[t].nparts:
            return -1
        i = self.topics[t].part_slot[m.partition]
        if i < 0 or not self.slots[i].active:
            return -1
        self.last_slot = i
        return i

    cdef void _destroy_processed(self) noexcept nogil:
        """Give the processed messages back to librdkafka. Done in bulk, between pops, rather than
        per record: a tight run of frees contends far less with the broker thread's allocations
        (measured: about 10% less CPU per read)."""
        cdef int i
        for i in range(self.msg_done, self.msg_pos):
            rd_kafka_message_destroy(self.msgs[i])
        self.msg_done = self.msg_pos

    cdef void _finish(self, int i) noexcept nogil:
        self._deactivate(i)
        self.slots[i].finished = 1
        self.finished_slots[self.nfinished] = i
        self.nfinished += 1

    cdef int _append(self, int idx, rd_kafka_message_t *m) noexcept nogil:
        """Copy one record into the column builders: 0, or the code (FS_OUT_OF_MEMORY,
        FS_COLUMN_TOO_LARGE) of what failed, the builders then holding part of the record (see
        `_rollback`). The split's position moves only once the whole record is in."""
        cdef rd_kafka_timestamp_type_t tstype = 0
        cdef int64_t ts = rd_kafka_message_timestamp(m, &tstype)
        cdef rd_kafka_headers_t *hdrs = NULL
        cdef size_t hi, hn, hsize
        cdef const char *hname
        cdef const void *hvalue
        cdef Node *nodes = self.nodes
        cdef Slot *s = &self.slots[idx]
        cdef int rc = DEC_OK
        if (node_put_i32(&nodes[COL_TOPIC], s.topic_index) < 0
                or node_put_i32(&nodes[COL_PARTITION], m.partition) < 0
                or node_put_i64(&nodes[COL_OFFSET], m.offset) < 0
                or node_put_i8(&nodes[COL_TIMESTAMP_TYPE], <int8_t> tstype) < 0):
            return FS_OUT_OF_MEMORY
        if tstype != 0:
            if node_put_i64(&nodes[COL_TIMESTAMP], ts) < 0:
                return FS_OUT_OF_MEMORY
        elif node_put_empty(&nodes[COL_TIMESTAMP]) != DEC_OK:
            return FS_OUT_OF_MEMORY
        if self.include_key and m.key != NULL:
            rc = node_put_bytes(&nodes[COL_KEY], <const uint8_t *> m.key, m.key_len)
        else:
            rc = node_put_empty(&nodes[COL_KEY])
        if rc == DEC_OK:
            if self.include_value and m.payload != NULL:
                rc = node_put_bytes(&nodes[COL_VALUE], <const uint8_t *> m.payload, m.len)
            else:
                rc = node_put_empty(&nodes[COL_VALUE])
        if rc == DEC_OK and self.include_headers:
            if rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR and hdrs != NULL:
                hn = rd_kafka_header_cnt(hdrs)
                for hi in range(hn):
                    if rd_kafka_header_get_all(hdrs, hi, &hname, &hvalue, &hsize) != 0:
                        continue
                    rc = node_put_bytes(&nodes[COL_HEADER_KEY], <const uint8_t *> hname, strlen(hname))
                    if rc == DEC_OK:
                        if hvalue != NULL:
                            rc = node_put_bytes(&nodes[COL_HEADER_VALUE], <const uint8_t *> hvalue, hsize)
                        else:
                            rc = node_put_empty(&nodes[COL_HEADER_VALUE])
                    if rc != DEC_OK:
                        break
                    if node_mark(&nodes[COL_HEADER], 1) < 0:
                        return FS_OUT_OF_MEMORY
            if rc == DEC_OK:
                rc = node_close_list(&nodes[COL_HEADERS], &nodes[COL_HEADER], 1)
        if rc != DEC_OK:
            return FS_COLUMN_TOO_LARGE if rc == DEC_TOO_LARGE else FS_OUT_OF_MEMORY
        self.data_bytes += <int64_t> (m.len + m.key_len)
        s.next_offset = m.offset + 1
        s.batch_records += 1
        s.batch_bytes += <int64_t> (m.len + m.key_len)
        if tstype != 0 and ts > s.batch_max_ts:
            s.batch_max_ts = ts
        if not s.touched:
            s.touched = 1
            self.touched_slots[self.ntouched] = idx
            self.ntouched += 1
        return 0

    cdef void _rollback(self, int64_t rows) noexcept nogil:
        """Drop what a record that failed part-way left in the builders: every column back to `rows`."""
        cdef int i
        for i in range(self.ncolumns):
            node_truncate(self.nodes, i, rows)

    cdef int _fill(self, int64_t max_rows, int64_t max_bytes, int64_t max_wait_ms,
                   int *err_code, int *err_slot, int64_t *err_offset) noexcept nogil:
        """The hot loop. Returns 1 when stopped by an error (code, slot and offset set), 2 when no
        broker has answered for `broker_timeout_ms`, else 0."""
        cdef int64_t deadline = now_ms() + max_wait_ms
        # A batch never grows past max_bytes of keys and values (nor past what 32-bit Arrow offsets
        # hold); a single record larger than that is a batch of its own.
        cdef int64_t byte_limit = max_bytes if max_bytes < INT32_MAX - 1 else INT32_MAX - 1
        cdef int64_t remaining
        cdef rd_kafka_message_t *m
        cdef ssize_t n
        cdef int idx, rc
        cdef int64_t rows
        cdef Slot *s
        while True:
            if self.woken:
                self.woken = 0
                return 0
            if self.state.fatal:
                err_code[0] = RD_KAFKA_RESP_ERR__FATAL
                return 1
            if self.state.oversize:
                err_code[0] = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE
                return 1
            if self.state.client_count:
                return 0          # `fetch` has the client errors judged (a security refusal?)
            if self.msg_pos >= self.msg_cnt:
                if self.fetching <= 0:
                    return 0
                rows = self.nodes[COL_TOPIC].length
                if rows >= max_rows or self.data_bytes >= max_bytes:
                    return 0
                remaining = max_rows - rows
                if remaining > MSG_ARRAY:
                    remaining = MSG_ARRAY
                self._destroy_processed()
                self.msg_pos = self.msg_cnt = self.msg_done = 0
                n = rd_kafka_consume_batch_queue(self.queue, 0, self.msgs, <size_t> remaining)
                if n <= 0:
                    remaining = deadline - now_ms()
                    if remaining <= 0:
                        return 0
                    if rows > 0 and remaining > 5:
                        remaining = 5
                    m = rd_kafka_consume_queue(self.queue, <int> remaining)
                    if m == NULL:
                        if rows > 0:
                            return 0
                        if self.state.down_since_ms >= 0 and \
                                now_ms() - self.state.down_since_ms > self.broker_timeout_ms:
                            return 2
                        continue
                    self.msgs[0] = m
                    n = 1
                self.msg_cnt = <int> n
            m = self.msgs[self.msg_pos]
            if m.err == RD_KAFKA_RESP_ERR_NO_ERROR:
                self.state.down_since_ms = -1
                idx = self._find_slot(m)
                if idx >= 0:
                    s = &self.slots[idx]
                    if s.paused:
                        pass
                    elif s.next_offset >= 0 and m.offset < s.next_offset:
                        self.refetched += 1
                    elif s.stop_offset >= 0 and m.offset >= s.stop_offset:
                        self._finish(idx)
                    else:
                        rows = self.nodes[COL_TOPIC].length
                        if rows > 0 and self.data_bytes + <int64_t> (m.len + m.key_len) > byte_limit:
                            return 0          # keeps this message for the next batch
                        rc = self._append(idx, m)
                        if rc != 0:
                            self._rollback(rows)
                            err_code[0] = rc
                            err_slot[0] = idx
                            err_offset[0] = m.offset
                            return 1
                        if s.stop_offset >= 0 and s.next_offset >= s.stop_offset:
                            self._finish(idx)
            elif m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF:
                idx = self._find_slot(m)
                if idx >= 0:
                    s = &self.slots[idx]
                    if s.stop_offset >= 0 and m.offset >= s.stop_offset and not s.paused:
                        self._finish(idx)
            elif m.rkt != NULL and (m.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                                    or m.err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
                                    or m.err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC):
                # The consumer's own metadata lacks the partition: not yet (a partition created a
                # moment ago) or not for now (a restarting broker). librdkafka keeps the partition
                # assigned and fetches it once metadata lists it; whether it was deleted is the
                # enumerator's call (a confirmed deletion removes the split). Recorded for stats().
                self.state.last_error = m.err
            else:
                idx = self._find_slot(m) if m.rkt != NULL else -1
                err_code[0] = m.err
                if m.payload != NULL and note_oversize(&self.state, <const char *> m.payload, m.len):
                    err_code[0] = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE
                    idx = -1
                elif m.rkt == NULL:
                    # A client-level event (a group coordinator look-up that failed, a dropped
                    # connection): librdkafka retries on its own and fastsource needs no group to
                    # read, so it is recorded for stats() and the fetch goes on. Lost brokers end
                    # a read through broker_timeout_ms, fatal errors through the error callback,
                    # security refusals through `_judge_client_errors`.
                    self.state.last_error = m.err
                    if m.payload != NULL:
                        note_client_error(&self.state, m.err, <const char *> m.payload, m.len)
                    self.msg_pos += 1
                    continue
                else:
                    copy_text(self.state.error_text, sizeof(self.state.error_text),
                              <const char *> m.payload, m.len if m.payload != NULL else 0)
                err_slot[0] = idx
                err_offset[0] = m.offset
                self.msg_pos += 1
                return 1
            self.msg_pos += 1

    def fetch(self, int64_t max_rows=65536, int64_t max_bytes=16 << 20, int64_t max_wait_ms=100):
        """Build one batch: stops at `max_rows` records, at `max_bytes` of keys and values (a batch
        grows past it only by being one record larger than that),
        `max_wait_ms` of waiting, a `wake_up()`, or when no split is left to fetch.

        Returns `(batch or None, progress, finished)`: `progress` lists, per split with records in
        the batch, `(split_id, next_offset, max_timestamp, records, bytes)`; `finished` lists the ids
        of splits that reached their stopping offset. A librdkafka error stops the batch; the records
        fetched before it are returned first and the error is raised by the next call.
        """
        cdef int err_code = 0
        cdef int err_slot = -1
        cdef int64_t err_offset = -1
        cdef int stopped
        cdef int i, k
        cdef Slot *s
        self._check_open()
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            raise error
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        with nogil:
            stopped = self._fill(max_rows, max_bytes, max_wait_ms, &err_code, &err_slot, &err_offset)
            self._destroy_processed()
            if stopped == 2:
                stopped = 0 if self._broker_answers() else 1
                err_code = RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN
        self._flush_logs()
        if stopped:
            self._pending_error = self._error(err_code, err_slot, err_offset)
        if self.state.client_count:
            self._judge_client_errors()
        progress = []
        for k in range(self.ntouched):
            i = self.touched_slots[k]
            s = &self.slots[i]
            progress.append((self._ids[i], s.next_offset, s.batch_max_ts, s.batch_records,
                             s.batch_bytes))
            s.touched = 0
            s.batch_records = 0
            s.batch_bytes = 0
            s.batch_max_ts = -1
        self.ntouched = 0
        ended = [self.finished_slots[k] for k in range(self.nfinished)]
        self.nfinished = 0
        finished = [self._ids[i] for i in ended]
        self._change_assignment([i for i in ended if self.slots[i].assigned], 0)
        for i in ended:
            self._release_slot(i)
        batch = self._take_batch() if self.nodes[COL_TOPIC].length else None
        if batch is None and self._pending_error is not None and not progress and not finished:
            error, self._pending_error = self._pending_error, None
            raise error
        return batch, progress, finished

    cdef void _flush_logs(self):
        """Hand librdkafka's buffered log lines to Python (fastsource.kafka.librdkafka_log)."""
        cdef int i
        if self.state.log_count or self.state.logs_dropped:
            lines = [(self.state.log_levels[i], self.state.log_lines[i].decode(errors="replace"))
                     for i in range(self.state.log_count)]
            dropped = self.state.logs_dropped
            self.state.log_count = 0
            self.state.logs_dropped = 0
            publish_log_lines(lines, dropped)

    cdef void _judge_client_errors(self) except *:
        """Have `fastsource.errors.authentication_failure` judge the client errors kept since the
        last fetch: the first security refusal becomes the pending error (retrying cannot mend it),
        unless the fetch already stopped on another."""
        cdef int i
        kept = [(self.state.client_codes[i], self.state.client_texts[i].decode(errors="replace"))
                for i in range(self.state.client_count)]
        self.state.client_count = 0
        for code, reason in kept:
            if self._pending_error is None and authentication_failure(code, reason):
                self._pending_error = CoreError(RD_KAFKA_RESP_ERR__AUTHENTICATION, None, reason)
                return

    cdef bint _broker_answers(self) noexcept nogil:
        """A metadata round trip: the all-brokers-down state is over once one answers. Short, as
        it only confirms a silence that has already lasted broker_timeout_ms."""
        cdef const rd_kafka_metadata_t *md = NULL
        if rd_kafka_metadata(self.rk, 0, NULL, &md, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR:
            return 0
        rd_kafka_metadata_destroy(md)
        self.state.down_since_ms = -1
        return 1

    cdef object _error(self, int code, int slot, int64_t offset):
        """The CoreError of a stopped fetch: its code, librdkafka's words, and where."""
        cdef Slot *s
        cdef int i
        topic = partition = None
        if slot >= 0:
            topic = self._topics[self.slots[slot].topic_index]
            partition = self.slots[slot].partition
        if code <= FS_OUT_OF_MEMORY:
            return CoreError(code, None, "", topic, partition, offset)
        name = rd_kafka_err2name(code).decode()
        if code == RD_KAFKA_RESP_ERR__FATAL:
            return CoreError(code, name, self._fatal_reason())
        if code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
            return CoreError(code, name, rd_kafka_err2str(code).decode())
        reason = self.state.error_text.decode(errors="replace")
        if code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE and slot < 0:
            # The response does not say which partition it was for: the splits being fetched, at
            # the offsets where their next record batch starts (one of them is too large).
            waiting = []
            for i in range(self.nslots):
                s = &self.slots[i]
                if s.active and not s.paused:
                    waiting.append((self._topics[s.topic_index], s.partition, s.next_offset))
            if len(waiting) == 1:
                return CoreError(code, name, reason, *waiting[0])
            return CoreError(code, name, reason, candidates=waiting)
        text = rd_kafka_err2str(code).decode()
        return CoreError(code, name, f"{text} ({reason})" if reason else text, topic, partition, offset)

    cdef str _fatal_reason(self):
        cdef char errstr[512]
        errstr[0] = 0
        rd_kafka_fatal_error(self.rk, errstr, sizeof(errstr))
        return errstr.decode(errors="replace")

    cdef object _take_batch(self):
        """The batch built so far as an Arrow record batch. Fresh builders replace the batch's before
        its buffers move into Arrow, so a failure on the way leaves no stale row, count or buffer."""
        cdef ColumnSet columns = self._columns
        cdef int i
        self.last_rows = self.nodes[COL_TOPIC].length
        columns.note_sizes()
        self._new_columns()
        arrays = [pa.DictionaryArray.from_arrays(columns.finish(COL_TOPIC), self._topic_dictionary)]
        arrays += [columns.finish(i) for i in range(COL_PARTITION, self.ncolumns)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def wake_up(self) -> None:
        """Make a running (or the next) `fetch` return promptly. Safe from any thread."""
        self.woken = 1
        if self.queue != NULL:
            rd_kafka_queue_yield(self.queue)

    # ------------------------------------------------------------------ offsets and metrics

    def commit(self, offsets, bint asynchronous=True) -> None:
        """Commit `[(topic, partition, next_offset)]` to the consumer group (needs `group.id`)."""
        cdef rd_kafka_topic_partition_list_t *lst
        cdef rd_kafka_topic_partition_t *tp
        cdef rd_kafka_resp_err_t err
        self._check_open()
        lst = rd_kafka_topic_partition_list_new(len(offsets) + 1)
        if lst == NULL:
            raise MemoryError()
        for topic, partition, offset in offsets:
            tp = rd_kafka_topic_partition_list_add(lst, topic.encode(), partition)
            tp.offset = offset
        with nogil:
            err = rd_kafka_commit(self.rk, lst, 1 if asynchronous else 0)
        rd_kafka_topic_partition_list_destroy(lst)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR:
            self.state.commits_failed += 1
            self.state.last_commit_err = err
            raise CoreError(err, rd_kafka_err2name(err).decode(), rd_kafka_err2str(err).decode())

    def high_watermarks(self, partitions) -> list:
        """The last high watermark the consumer saw for each `(topic, partition)` (no request is
        sent; -1 where none was seen yet). Safe from any thread."""
        cdef int64_t low, high
        result = []
        for topic, partition in partitions:
            low = high = -1
            if self.rk == NULL or rd_kafka_get_watermark_offsets(
                    self.rk, topic.encode(), partition, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR:
                high = -1
            result.append(high)
        return result

    def broker_down_since(self):
        """Monotonic time (s) since which no broker has answered this consumer, or None while one
        does. Safe from any thread."""
        cdef int64_t since = self.state.down_since_ms
        return None if since < 0 else since / 1000.0

    def clear_broker_down(self) -> None:
        """Another client of the stream got an answer since this consumer lost the cluster: the
        silence is over (an idle consumer gets no record that would tell it so)."""
        self.state.down_since_ms = -1

    def stats(self) -> dict:
        """Commit counters and the last client error (safe from any thread)."""
        return {
            "commits_succeeded": self.state.commits_ok,
            "commits_failed": self.state.commits_failed,
            "last_commit_error": (rd_kafka_err2name(self.state.last_commit_err).decode()
                                  if self.state.last_commit_err else None),
            "last_client_error": (rd_kafka_err2name(self.state.last_error).decode()
                                  if self.state.last_error else None),
            "records_refetched": self.refetched,
        }
