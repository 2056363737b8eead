# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The data plane: one librdkafka consumer per reader, its fetch loop, and the Arrow column builders.

Everything between `rd_kafka_consume_batch_queue` and a finished set of Arrow buffers runs without the
GIL and without a Python object per record. The Python layer (`fastsource.reader.split_reader`) owns the
control decisions; this module only fetches, copies and keeps the per-split fetch positions.
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uintptr_t, INT32_MAX
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memchr, memcpy, memset, strcmp, strlen, strstr
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from fastsource.includes.librdkafka cimport *

import array as pyarray
import logging
import re
import threading
import time

import pyarrow as pa

DEF MSG_ARRAY = 4096
DEF LOG_LINES = 32
DEF LOG_LINE_SIZE = 320

# librdkafka's own log lines (connection failures, ...) go to this logger instead of stderr.
librdkafka_log = logging.getLogger("fastsource.librdkafka")


class RepeatedLines:
    """Collapses repeated librdkafka log lines across every consumer of the process: a line (its
    numbers aside) is shown once per `window_s`, and the next showing says how many it stood for.
    An outage makes every consumer log each failed reconnect; that is one line, not hundreds."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._seen = {}
        self._lock = threading.Lock()

    def admit(self, text: str):
        """`text` (with the count of lines suppressed since it was last shown) or None to drop it."""
        key = re.sub(r"\d+", "#", text)
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.window_s:
                entry[1] += 1
                return None
            if len(self._seen) > 1000:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
            self._seen[key] = [now, 0]
        if entry is not None and entry[1]:
            return f"{text} ({entry[1]} similar line(s) suppressed in the last {now - entry[0]:.0f} s)"
        return text


repeated_lines = RepeatedLines()

TIMESTAMP_TYPE = pa.timestamp("ms", tz="UTC")
HEADERS_TYPE = pa.list_(pa.struct([pa.field("key", pa.string()), pa.field("value", pa.binary())]))


cdef object string_array(list values):
    """A pyarrow string array built from its buffers. `pa.array(list)` would import pandas when it is
    installed (~0.2 s on the first call), on the fetch path's start-up."""
    encoded = [v.encode() for v in values]
    offsets = [0]
    total = 0
    for item in encoded:
        total += len(item)
        offsets.append(total)
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [None, pa.py_buffer(pyarray.array("i", offsets).tobytes()),
                                  pa.py_buffer(b"".join(encoded))])


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


def librdkafka_version() -> str:
    """Version string of the librdkafka this process runs."""
    return rd_kafka_version_str().decode()


cdef extern from "json_scan.h":
    int FS_JSON_OBJECT, FS_JSON_NULL, FS_BLOCK
    int fs_scan_json_record(uint8_t *p, int64_t length, int64_t max_depth, int64_t *where) nogil

# What the codes of fs_scan_json_record above FS_JSON_NULL mean, in their order.
_JSON_PROBLEMS = (None, None, "the value is not a JSON object",
                  "objects and arrays nested deeper than max_depth", "invalid UTF-8",
                  "a raw control character", "an invalid escape in a string",
                  "the JSON object is truncated", "data after the JSON object")


class InvalidRecord(Exception):
    """Record `row` of a batch failed a check before parsing; `reason` says which and where."""

    def __init__(self, row, reason):
        super().__init__(reason)
        self.row = row
        self.reason = reason


def json_lines(raw, int64_t max_depth=64):
    """One newline-delimited buffer from a binary array of JSON objects, for pyarrow's JSON reader.

    Row i of the buffer is record i. Each record is checked on the way (includes/json_scan.h), so
    pyarrow's parser only ever sees well-framed objects of bounded depth in valid UTF-8: a record that
    fails raises `InvalidRecord` naming the first such row. Null, empty and `null` values become `{}`
    and are marked in the returned null mask (None when there are none). One pass, one allocation.
    Returns the buffer, the length of the longest line and the mask."""
    if raw.type != pa.binary() and raw.type != pa.string():  # the offsets are read as 32-bit
        raise TypeError(f"json_lines: a binary or string array expected, not {raw.type}")
    cdef int64_t n = len(raw)
    cdef int64_t first = raw.offset
    buffers = raw.buffers()
    validity, offsets, data = buffers[0], buffers[1], buffers[2]
    cdef const int32_t *o = (<const int32_t *> <uintptr_t> offsets.address) + first
    cdef const uint8_t *bits = NULL if validity is None else <const uint8_t *> <uintptr_t> validity.address
    cdef const char *d = NULL if data is None else <const char *> <uintptr_t> data.address
    # Slack at the end: the record check reads whole blocks of FS_BLOCK bytes.
    cdef int64_t capacity = (o[n] - o[0]) + 3 * n + 1 + FS_BLOCK
    cdef char *out = <char *> malloc(capacity)
    cdef uint8_t *null_bits = <uint8_t *> calloc((n >> 3) + 1, 1)
    cdef int64_t pos = 0, longest = 0, nulls = 0, bad_row = -1, where = 0, i, row, length
    cdef int status = FS_JSON_OBJECT
    if out == NULL or null_bits == NULL:
        free(out)
        free(null_bits)
        raise MemoryError()
    with nogil:
        for i in range(n):
            row = first + i
            length = o[i + 1] - o[i]
            if length == 0 or (bits != NULL and not (bits[row >> 3] >> (row & 7)) & 1):
                status = FS_JSON_NULL
            else:
                memcpy(out + pos, d + o[i], length)
                status = fs_scan_json_record(<uint8_t *> out + pos, length, max_depth, &where)
                if status > FS_JSON_NULL:
                    bad_row = i
                    break
            if status == FS_JSON_NULL:
                out[pos] = b'{'
                out[pos + 1] = b'}'
                length = 2
                null_bits[i >> 3] |= 1 << (i & 7)
                nulls += 1
            pos += length
            out[pos] = b'\n'
            pos += 1
            if length > longest:
                longest = length
    if bad_row >= 0:
        free(out)
        free(null_bits)
        raise InvalidRecord(bad_row, f"{_JSON_PROBLEMS[status]} (at byte {where})")
    cdef _Allocation owner = _Allocation.__new__(_Allocation)
    owner.ptr = out
    buffer = pa.foreign_buffer(<uintptr_t> out, pos, base=owner)
    if nulls == 0:
        free(null_bits)
        return buffer, longest, None
    cdef _Allocation mask_owner = _Allocation.__new__(_Allocation)
    mask_owner.ptr = null_bits
    mask = pa.foreign_buffer(<uintptr_t> null_bits, (n >> 3) + 1, base=mask_owner)
    return buffer, longest, pa.Array.from_buffers(pa.bool_(), n, [None, mask])


class FetchError(Exception):
    """An error reported by librdkafka while fetching, with the coordinates it concerns."""

    def __init__(self, code, name, reason, topic=None, partition=None, offset=None):
        self.code = code
        self.name = name
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        where = ""
        if topic is not None:
            where = f" on {topic}[{partition}]"
            if offset is not None and offset >= 0:
                where += f" at offset {offset}"
        super().__init__(f"{name}{where}: {reason}")


# ---------------------------------------------------------------------------------------------------
# Growable C buffers handed over to Arrow without a copy.

cdef struct Buf:
    char *data
    int64_t size
    int64_t cap


cdef inline int buf_reserve(Buf *b, int64_t extra, bint zero) noexcept nogil:
    cdef int64_t need = b.size + extra
    cdef int64_t newcap
    cdef char *p
    if need <= b.cap:
        return 0
    newcap = b.cap * 2
    if newcap < need:
        newcap = need
    if newcap < 256:
        newcap = 256
    p = <char *> realloc(b.data, newcap)
    if p == NULL:
        return -1
    if zero:
        memset(p + b.cap, 0, newcap - b.cap)
    b.data = p
    b.cap = newcap
    return 0


cdef inline int buf_append(Buf *b, const void *src, int64_t n) noexcept nogil:
    if buf_reserve(b, n, 0) < 0:
        return -1
    if n > 0:
        memcpy(b.data + b.size, src, n)
    b.size += n
    return 0


cdef inline int buf_append_i32(Buf *b, int32_t v) noexcept nogil:
    return buf_append(b, &v, 4)


# Stores into room reserved beforehand (`Consumer._reserve_rows`): no capacity check per record.
cdef inline void buf_put_i32(Buf *b, int32_t v) noexcept nogil:
    memcpy(b.data + b.size, &v, 4)
    b.size += 4


cdef inline void buf_put_i64(Buf *b, int64_t v) noexcept nogil:
    memcpy(b.data + b.size, &v, 8)
    b.size += 8


cdef inline void buf_put_i8(Buf *b, int8_t v) noexcept nogil:
    b.data[b.size] = <char> v
    b.size += 1


cdef class _Allocation:
    """Owns one malloc'ed block that an Arrow buffer points into; frees it when Arrow lets go."""
    cdef void *ptr

    def __dealloc__(self):
        free(self.ptr)


cdef object buf_take(Buf *b):
    """Hand the block to a pyarrow.Buffer (no copy) and leave `b` empty."""
    cdef _Allocation owner = _Allocation.__new__(_Allocation)
    if b.data == NULL:
        return pa.py_buffer(b"")
    owner.ptr = b.data
    result = pa.foreign_buffer(<uintptr_t> b.data, b.size, base=owner)
    b.data = NULL
    b.size = 0
    b.cap = 0
    return result


cdef inline void buf_free(Buf *b) noexcept nogil:
    free(b.data)
    b.data = NULL
    b.size = 0
    b.cap = 0


# A validity bitmap that exists only once a column has its first null.
cdef struct Validity:
    Buf bits
    int64_t nulls
    bint present


cdef inline int validity_append(Validity *v, int64_t row, bint valid) noexcept nogil:
    """Record whether row number `row` is valid; rows before the first null are all valid."""
    cdef int64_t nbytes = (row >> 3) + 1
    cdef int64_t i
    if not valid and not v.present:
        if buf_reserve(&v.bits, nbytes, 1) < 0:
            return -1
        memset(v.bits.data, 0xFF, row >> 3)
        for i in range((row >> 3) << 3, row):
            v.bits.data[i >> 3] |= <char> (1 << (i & 7))
        v.bits.size = row >> 3
        v.present = 1
    if not v.present:
        return 0
    if v.bits.size < nbytes:
        if buf_reserve(&v.bits, nbytes - v.bits.size, 1) < 0:
            return -1
        v.bits.size = nbytes
    if valid:
        v.bits.data[row >> 3] |= <char> (1 << (row & 7))
    else:
        v.nulls += 1
    return 0


cdef object validity_take(Validity *v):
    """The bitmap as a pyarrow.Buffer, or None when the column has no null."""
    result = buf_take(&v.bits) if v.present else None
    v.present = 0
    v.nulls = 0
    return result


cdef inline void validity_free(Validity *v) noexcept nogil:
    buf_free(&v.bits)
    v.present = 0
    v.nulls = 0


# A nullable binary column: validity, int32 offsets, data.
cdef struct BinCol:
    Validity validity
    Buf offsets
    Buf data


cdef inline int bincol_init(BinCol *c) noexcept nogil:
    return buf_append_i32(&c.offsets, 0)


cdef inline int bincol_append(BinCol *c, int64_t row, const void *p, size_t n) noexcept nogil:
    """Append one value (NULL pointer = null) as row number `row`."""
    if buf_reserve(&c.offsets, 4, 0) < 0:
        return -1
    return bincol_put(c, row, p, n)


cdef inline int bincol_put(BinCol *c, int64_t row, const void *p, size_t n) noexcept nogil:
    """`bincol_append` into an offsets buffer with room reserved beforehand."""
    if validity_append(&c.validity, row, p != NULL) < 0:
        return -1
    if p != NULL and buf_append(&c.data, p, n) < 0:
        return -1
    buf_put_i32(&c.offsets, <int32_t> c.data.size)
    return 0


cdef inline void bincol_free(BinCol *c) noexcept nogil:
    validity_free(&c.validity)
    buf_free(&c.offsets)
    buf_free(&c.data)


cdef object bincol_take(BinCol *c, object arrow_type, int64_t length):
    nulls = c.validity.nulls
    validity = validity_take(&c.validity)
    offsets = buf_take(&c.offsets)
    data = buf_take(&c.data)
    return pa.Array.from_buffers(arrow_type, length, [validity, offsets, data], null_count=nulls)


# ---------------------------------------------------------------------------------------------------
# Per-split fetch positions, and where a message's split is found: the message's topic handle leads
# to its topic (a hash of handles), the topic's partition table to the split's slot. Finished and
# removed slots are reused, so every per-split cost stays constant however many splits came and went.

cdef struct Topic:
    char *name
    rd_kafka_topic_t *rkt      # librdkafka's handle, known from the first message of the topic
    int32_t *part_slot         # slot of the split reading each partition, -1 for none
    int32_t nparts             # length of part_slot


cdef struct Slot:
    int32_t topic_index
    int32_t partition
    int64_t next_offset        # next offset to fetch; records below it are duplicates
    int64_t stop_offset        # exclusive; -1 when unbounded
    int64_t batch_records
    int64_t batch_bytes
    int64_t batch_max_ts
    bint active                # added and neither removed nor finished
    bint paused
    bint assigned              # its partition is in the consumer's assignment
    bint finished              # reached its stop; reported (and the slot freed) by the next fetch
    bint touched               # has records in the batch being built


cdef struct CoreState:
    # Shared with librdkafka callbacks, which run on the fetching thread inside consume calls.
    int64_t commits_ok
    int64_t commits_failed
    int last_commit_err
    int last_error
    int64_t down_since_ms      # first all-brokers-down error not followed by a record; -1 when up
    bint fatal
    bint oversize              # a fetch response exceeded receive.message.max.bytes
    bint auth_failed           # the broker refused the client's security (SASL, TLS)
    # librdkafka log lines, kept by the log callback (which runs without the GIL, inside consume
    # calls) until `fetch` hands them to `logging`.
    int log_levels[LOG_LINES]
    char log_lines[LOG_LINES][LOG_LINE_SIZE]
    int log_count
    int64_t logs_dropped
    char error_text[256]       # librdkafka's own words for the error that stopped a fetch


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
        note_auth_failure(st, err, reason, strlen(reason))


cdef bint note_auth_failure(CoreState *st, int err, const char *reason, size_t n) noexcept nogil:
    """Whether an error says the broker refused the client's security; records it if so. SASL
    refusals and TLS errors have their own codes; a TLS client talking to a PLAINTEXT listener is a
    transport error whose reason names the handshake, and a broker refusing the client certificate one
    that names the TLS alert. Retrying cannot mend any of them."""
    cdef char text[256]
    if err != RD_KAFKA_RESP_ERR__AUTHENTICATION and err != RD_KAFKA_RESP_ERR__SSL:
        if err != RD_KAFKA_RESP_ERR__TRANSPORT:
            return 0
        copy_text(text, sizeof(text), reason, n)
        if strstr(text, "SSL handshake failed") == NULL and strstr(text, "ssl/tls alert") == NULL:
            return 0
    if not st.auth_failed and not st.oversize:
        copy_text(st.error_text, sizeof(st.error_text), reason, n)
        st.auth_failed = 1
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
    cdef rd_kafka_t *rk
    cdef rd_kafka_queue_t *queue
    cdef CoreState state
    cdef Slot *slots
    cdef int nslots            # slots ever used (free ones included)
    cdef int capslots
    cdef int last_slot
    cdef int *free_slots       # each list below has room for capslots entries
    cdef int nfree
    cdef int *touched_slots    # slots with records in the batch being built
    cdef int ntouched
    cdef int *finished_slots   # slots finished since the last fetch returned
    cdef int nfinished
    cdef int fetching          # slots active and not paused
    cdef Topic *topics
    cdef int ntopics
    cdef int captopics
    cdef rd_kafka_topic_t **rkt_keys   # open addressing: topic handle -> index into topics
    cdef int *rkt_values
    cdef int rkt_cap           # a power of two, at least twice ntopics
    cdef int64_t refetched     # records dropped as already fetched
    cdef rd_kafka_message_t *msgs[MSG_ARRAY]
    cdef int msg_pos           # next message of `msgs` to process
    cdef int msg_cnt
    cdef int msg_done          # messages of `msgs` before this one are destroyed
    cdef volatile int woken
    cdef bint include_headers
    cdef bint include_key      # False: the key column is all nulls (a reader whose keys nobody reads)
    cdef bint include_value    # False: the value column is all nulls
    cdef bint own_logs         # librdkafka's log lines come through the consumer queue to `logging`
    cdef int64_t broker_timeout_ms
    cdef list _ids
    cdef dict _index
    cdef list _topics
    cdef dict _topic_index
    cdef object _topic_dictionary
    cdef object _pending_error
    cdef readonly object schema

    # Column builders of the batch under construction.
    cdef Buf c_topic
    cdef Buf c_partition
    cdef Buf c_offset
    cdef Buf c_timestamp
    cdef Validity c_timestamp_validity
    cdef Buf c_tstype
    cdef BinCol c_key
    cdef BinCol c_value
    cdef Buf h_list
    cdef BinCol h_key
    cdef BinCol h_value
    cdef int64_t h_count
    cdef int64_t rows
    cdef int64_t data_bytes
    # Sizes of the last batch: the next one's buffers are reserved at these sizes up front, which
    # saves the copies and page faults of growing them from nothing by doubling.
    cdef int64_t last_rows
    cdef int64_t last_key_bytes
    cdef int64_t last_value_bytes

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

    def __init__(self, config: dict, include_headers: bool = False, broker_timeout_ms: int = 60000,
                 include_key: bool = True, include_value: bool = True):
        cdef char errstr[512]
        cdef rd_kafka_conf_t *conf = rd_kafka_conf_new()
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
        self._reset_builders()

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
        self._free_builders()

    def close(self) -> None:
        """Leave the assignment, close the consumer and free every buffer. Idempotent."""
        self._release()
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

    cdef inline void _rkt_put(self, rd_kafka_topic_t *rkt, int topic) noexcept nogil:
        cdef size_t h = (<size_t> rkt >> 4) * <size_t> 0x9E3779B97F4A7C15
        cdef int mask = self.rkt_cap - 1
        cdef int i = <int> (h >> 40) & mask
        while self.rkt_keys[i] != NULL and self.rkt_keys[i] != rkt:
            i = (i + 1) & mask
        self.rkt_keys[i] = rkt
        self.rkt_values[i] = topic

    cdef inline int _topic_of(self, rd_kafka_topic_t *rkt) noexcept nogil:
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

    cdef inline void _deactivate(self, int i) noexcept nogil:
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
            raise FetchError(code, rd_kafka_err2name(code).decode(), reason)
        for i in slots:
            self.slots[i].assigned = add

    # ------------------------------------------------------------------ fetch

    cdef void _reset_builders(self) except *:
        cdef int64_t n = self.last_rows
        if n > 0 and (buf_reserve(&self.c_topic, 4 * n, 0) < 0
                      or buf_reserve(&self.c_partition, 4 * n, 0) < 0
                      or buf_reserve(&self.c_offset, 8 * n, 0) < 0
                      or buf_reserve(&self.c_timestamp, 8 * n, 0) < 0
                      or buf_reserve(&self.c_tstype, n, 0) < 0
                      or buf_reserve(&self.c_key.offsets, 4 * (n + 1), 0) < 0
                      or buf_reserve(&self.c_value.offsets, 4 * (n + 1), 0) < 0
                      or buf_reserve(&self.c_key.data, self.last_key_bytes, 0) < 0
                      or buf_reserve(&self.c_value.data, self.last_value_bytes, 0) < 0):
            raise MemoryError()
        if bincol_init(&self.c_key) < 0 or bincol_init(&self.c_value) < 0:
            raise MemoryError()
        if self.include_headers and (bincol_init(&self.h_key) < 0 or bincol_init(&self.h_value) < 0
                                     or buf_append_i32(&self.h_list, 0) < 0):
            raise MemoryError()
        self.rows = 0
        self.data_bytes = 0
        self.h_count = 0

    cdef void _free_builders(self) noexcept:
        buf_free(&self.c_topic)
        buf_free(&self.c_partition)
        buf_free(&self.c_offset)
        buf_free(&self.c_timestamp)
        validity_free(&self.c_timestamp_validity)
        buf_free(&self.c_tstype)
        bincol_free(&self.c_key)
        bincol_free(&self.c_value)
        buf_free(&self.h_list)
        bincol_free(&self.h_key)
        bincol_free(&self.h_value)

    cdef inline int _find_slot(self, rd_kafka_message_t *m) noexcept nogil:
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

    cdef inline void _destroy_processed(self) noexcept nogil:
        """Give the processed messages back to librdkafka. Done in bulk, between pops, rather than
        per record: a tight run of frees contends far less with the broker thread's allocations
        (measured: about 10% less CPU per read)."""
        cdef int i
        for i in range(self.msg_done, self.msg_pos):
            rd_kafka_message_destroy(self.msgs[i])
        self.msg_done = self.msg_pos

    cdef inline int _reserve_rows(self, int64_t n) noexcept nogil:
        """Room for `n` more records in the fixed-width columns, which `_append` fills unchecked."""
        if (buf_reserve(&self.c_topic, 4 * n, 0) < 0
                or buf_reserve(&self.c_partition, 4 * n, 0) < 0
                or buf_reserve(&self.c_offset, 8 * n, 0) < 0
                or buf_reserve(&self.c_timestamp, 8 * n, 0) < 0
                or buf_reserve(&self.c_tstype, n, 0) < 0
                or buf_reserve(&self.c_key.offsets, 4 * n, 0) < 0
                or buf_reserve(&self.c_value.offsets, 4 * n, 0) < 0):
            return -1
        return 0

    cdef inline void _finish(self, int i) noexcept nogil:
        self._deactivate(i)
        self.slots[i].finished = 1
        self.finished_slots[self.nfinished] = i
        self.nfinished += 1

    cdef int _append(self, int idx, rd_kafka_message_t *m) noexcept nogil:
        """Copy one record into the column builders. Returns -1 when out of memory."""
        cdef rd_kafka_timestamp_type_t tstype = 0
        cdef int64_t ts = rd_kafka_message_timestamp(m, &tstype)
        cdef rd_kafka_headers_t *hdrs = NULL
        cdef size_t hi, hn, hsize
        cdef const char *hname
        cdef const void *hvalue
        cdef int64_t row = self.rows
        cdef Slot *s = &self.slots[idx]
        buf_put_i32(&self.c_topic, s.topic_index)
        buf_put_i32(&self.c_partition, m.partition)
        buf_put_i64(&self.c_offset, m.offset)
        buf_put_i64(&self.c_timestamp, ts if tstype != 0 else 0)
        buf_put_i8(&self.c_tstype, <int8_t> tstype)
        if (validity_append(&self.c_timestamp_validity, row, tstype != 0) < 0
                or bincol_put(&self.c_key, row, m.key if self.include_key else NULL, m.key_len) < 0
                or bincol_put(&self.c_value, row, m.payload if self.include_value else NULL, m.len) < 0):
            return -1
        if self.include_headers:
            if rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR and hdrs != NULL:
                hn = rd_kafka_header_cnt(hdrs)
                for hi in range(hn):
                    if rd_kafka_header_get_all(hdrs, hi, &hname, &hvalue, &hsize) != 0:
                        continue
                    if (bincol_append(&self.h_key, self.h_count, hname, strlen(hname)) < 0
                            or bincol_append(&self.h_value, self.h_count, hvalue, hsize) < 0):
                        return -1
                    self.h_count += 1
            if buf_append_i32(&self.h_list, <int32_t> self.h_count) < 0:
                return -1
        self.rows += 1
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
        cdef int idx
        cdef Slot *s
        if self.msg_pos < self.msg_cnt and self._reserve_rows(self.msg_cnt - self.msg_pos) < 0:
            err_code[0] = -1
            return 1
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
            if self.state.auth_failed:
                err_code[0] = RD_KAFKA_RESP_ERR__AUTHENTICATION
                return 1
            if self.msg_pos >= self.msg_cnt:
                if self.fetching <= 0:
                    return 0
                if self.rows >= max_rows or self.data_bytes >= max_bytes:
                    return 0
                remaining = max_rows - self.rows
                if remaining > MSG_ARRAY:
                    remaining = MSG_ARRAY
                self._destroy_processed()
                self.msg_pos = self.msg_cnt = self.msg_done = 0
                n = rd_kafka_consume_batch_queue(self.queue, 0, self.msgs, <size_t> remaining)
                if n <= 0:
                    remaining = deadline - now_ms()
                    if remaining <= 0:
                        return 0
                    if self.rows > 0 and remaining > 5:
                        remaining = 5
                    m = rd_kafka_consume_queue(self.queue, <int> remaining)
                    if m == NULL:
                        if self.rows > 0:
                            return 0
                        if self.state.down_since_ms >= 0 and \
                                now_ms() - self.state.down_since_ms > self.broker_timeout_ms:
                            return 2
                        continue
                    self.msgs[0] = m
                    n = 1
                self.msg_cnt = <int> n
                if self._reserve_rows(n) < 0:
                    err_code[0] = -1
                    return 1
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
                        if self.rows > 0 and \
                                self.data_bytes + <int64_t> (m.len + m.key_len) > byte_limit:
                            return 0          # keeps this message for the next batch
                        if self._append(idx, m) < 0:
                            err_code[0] = -1
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
                elif m.rkt == NULL and m.payload != NULL and note_auth_failure(
                        &self.state, m.err, <const char *> m.payload, m.len):
                    self.msg_pos += 1
                    continue
                elif m.rkt == NULL:
                    # A client-level event (a group coordinator look-up that failed, a dropped
                    # connection): librdkafka retries on its own and fastsource needs no group to
                    # read, so it is recorded for stats() and the fetch goes on. Lost brokers end
                    # a read through broker_timeout_ms, fatal errors through the error callback.
                    self.state.last_error = m.err
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
        batch = self._take_batch() if self.rows else None
        if batch is None and self._pending_error is not None and not progress and not finished:
            error, self._pending_error = self._pending_error, None
            raise error
        return batch, progress, finished

    cdef void _flush_logs(self):
        """Hand librdkafka's buffered log lines to the `fastsource.librdkafka` logger."""
        cdef int i
        cdef int level
        for i in range(self.state.log_count):
            level = self.state.log_levels[i]
            py_level = (logging.CRITICAL if level <= 2 else logging.ERROR if level == 3 else
                        logging.WARNING if level == 4 else logging.INFO if level <= 6 else logging.DEBUG)
            text = self.state.log_lines[i].decode(errors="replace")
            if level <= 6:
                text = repeated_lines.admit(text)
            if text is not None:
                librdkafka_log.log(py_level, "%s", text)
        self.state.log_count = 0
        if self.state.logs_dropped:
            text = repeated_lines.admit(f"{self.state.logs_dropped} more librdkafka log lines dropped")
            if text is not None:
                librdkafka_log.warning("%s", text)
            self.state.logs_dropped = 0

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
        if code == -1:
            return MemoryError("out of memory while building a batch")
        topic = partition = None
        if slot >= 0:
            topic = self._topics[self.slots[slot].topic_index]
            partition = self.slots[slot].partition
        name = rd_kafka_err2name(code).decode()
        reason = rd_kafka_err2str(code).decode()
        if self.state.error_text[0] != 0:
            reason = f"{reason} ({self.state.error_text.decode(errors='replace')})"
        if code == RD_KAFKA_RESP_ERR__FATAL:
            return FetchError(code, name, self._fatal_reason())
        if code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
            return FetchError(code, name, f"no broker answered for {self.broker_timeout_ms} ms")
        if code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE and slot < 0:
            return self._oversize_error(code, name)
        return FetchError(code, name, reason, topic, partition, offset)

    cdef object _oversize_error(self, int code, str name):
        """The response does not say which partition it was for: name the splits being fetched, at
        the offsets where their next record batch starts (one of them is too large)."""
        cdef Slot *s
        cdef int i
        waiting = []
        for i in range(self.nslots):
            s = &self.slots[i]
            if s.active and not s.paused:
                waiting.append((self._topics[s.topic_index], s.partition, s.next_offset))
        reason = self.state.error_text.decode(errors="replace")
        if len(waiting) == 1:
            topic, partition, offset = waiting[0]
            return FetchError(code, name, reason, topic, partition, offset)
        where = ", ".join(f"{t}[{p}] at offset {o}" for t, p, o in waiting)
        return FetchError(code, name, f"{reason}; the record batch is the next one of: {where}")

    cdef str _fatal_reason(self):
        cdef char errstr[512]
        errstr[0] = 0
        rd_kafka_fatal_error(self.rk, errstr, sizeof(errstr))
        return errstr.decode(errors="replace")

    cdef object _take_timestamps(self, int64_t n):
        nulls = self.c_timestamp_validity.nulls
        validity = validity_take(&self.c_timestamp_validity)
        return pa.Array.from_buffers(TIMESTAMP_TYPE, n, [validity, buf_take(&self.c_timestamp)],
                                     null_count=nulls)

    cdef object _take_batch(self):
        n = self.rows
        self.last_rows = n
        self.last_key_bytes = self.c_key.data.size
        self.last_value_bytes = self.c_value.data.size
        indices = pa.Array.from_buffers(pa.int32(), n, [None, buf_take(&self.c_topic)])
        columns = [
            pa.DictionaryArray.from_arrays(indices, self._topic_dictionary),
            pa.Array.from_buffers(pa.int32(), n, [None, buf_take(&self.c_partition)]),
            pa.Array.from_buffers(pa.int64(), n, [None, buf_take(&self.c_offset)]),
            self._take_timestamps(n),
            pa.Array.from_buffers(pa.int8(), n, [None, buf_take(&self.c_tstype)]),
            bincol_take(&self.c_key, pa.binary(), n),
            bincol_take(&self.c_value, pa.binary(), n),
        ]
        if self.include_headers:
            hk = bincol_take(&self.h_key, pa.string(), self.h_count)
            hv = bincol_take(&self.h_value, pa.binary(), self.h_count)
            entries = pa.StructArray.from_arrays([hk, hv], fields=list(HEADERS_TYPE.value_type))
            columns.append(pa.Array.from_buffers(HEADERS_TYPE, n, [None, buf_take(&self.h_list)],
                                                 children=[entries]))
        self._reset_builders()
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

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
        for topic, partition, offset in offsets:
            tp = rd_kafka_topic_partition_list_add(lst, topic.encode(), partition)
            tp.offset = offset
        with nogil:
            err = rd_kafka_commit(self.rk, lst, 1 if asynchronous else 0)
        rd_kafka_topic_partition_list_destroy(lst)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR:
            self.state.commits_failed += 1
            self.state.last_commit_err = err
            raise FetchError(err, rd_kafka_err2name(err).decode(), rd_kafka_err2str(err).decode())

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
