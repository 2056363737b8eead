# The compiled Kafka consumer (_consumer.pyx): its C state, the librdkafka declarations it uses
# (includes/librdkafka.pxd) and the shared Arrow builders it fills (formats/_builders.pxd).
cimport cython
from libc.stdint cimport int32_t, int64_t

from fastsource.formats._builders cimport BatchLayout, ColumnSet, Node
from fastsource.includes.librdkafka cimport *

cdef enum:
    MSG_ARRAY = 4096
    LOG_LINES = 32
    LOG_LINE_SIZE = 320
    CLIENT_ERRORS = 8          # client errors kept between two fetches for the security check
    ERROR_TEXT_SIZE = 256

# Codes of this unit, rows of fastsource.errors.ERROR_TABLE (librdkafka's codes end at -200).
cdef enum:
    FS_OUT_OF_MEMORY = -10001
    FS_COLUMN_TOO_LARGE = -10002

# Nodes of a raw batch's columns in its ColumnSet (the header nodes only with headers).
cdef enum:
    COL_TOPIC = 0
    COL_PARTITION = 1
    COL_OFFSET = 2
    COL_TIMESTAMP = 3
    COL_TIMESTAMP_TYPE = 4
    COL_KEY = 5
    COL_VALUE = 6
    COL_HEADERS = 7
    COL_HEADER = 8
    COL_HEADER_KEY = 9
    COL_HEADER_VALUE = 10


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
    # librdkafka log lines, kept by the log callback (which runs without the GIL, inside consume
    # calls) until `fetch` hands them to Python (fastsource.kafka.librdkafka_log).
    int log_levels[LOG_LINES]
    char log_lines[LOG_LINES][LOG_LINE_SIZE]
    int log_count
    int64_t logs_dropped
    # Client errors that may be a security refusal (SASL, TLS, a transport error), with librdkafka's
    # words, until `fetch` has Python judge them (fastsource.errors.authentication_failure).
    int client_codes[CLIENT_ERRORS]
    char client_texts[CLIENT_ERRORS][ERROR_TEXT_SIZE]
    int client_count
    char error_text[ERROR_TEXT_SIZE]   # librdkafka's own words for the error that stopped a fetch


# Final: its C methods are called directly (the fetch loop calls some per record), not through a vtable.
@cython.final
cdef class Consumer:
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

    # The builders of the batch under construction: its row count is the columns' own length, so a
    # batch that failed part-way cannot leave a stale count behind.
    cdef BatchLayout _layout
    cdef ColumnSet _columns
    cdef Node *nodes
    cdef int ncolumns
    cdef int64_t data_bytes
    # Rows of the last batch: the next one's buffers are reserved for as many up front, which saves
    # the copies and page faults of growing them from nothing by doubling.
    cdef int64_t last_rows

    cdef void _release(self) noexcept
    cdef void _check_open(self) except *
    cdef int _new_slot(self, str split_id, str topic, int partition) except -1
    cdef void _grow_slots(self) except *
    cdef int _grow_list(self, int **lst, int cap) noexcept
    cdef int _new_topic(self, str topic) except -1
    cdef void _grow_rkt_table(self, int at_least) except *
    cdef void _rkt_put(self, rd_kafka_topic_t *rkt, int topic) noexcept nogil
    cdef int _topic_of(self, rd_kafka_topic_t *rkt) noexcept nogil
    cdef void _release_slot(self, int i) noexcept
    cdef void _deactivate(self, int i) noexcept nogil
    cdef void _change_assignment(self, list slots, bint add) except *
    cdef void _new_columns(self) except *
    cdef int _find_slot(self, rd_kafka_message_t *m) noexcept nogil
    cdef void _destroy_processed(self) noexcept nogil
    cdef void _finish(self, int i) noexcept nogil
    cdef int _append(self, int idx, rd_kafka_message_t *m) noexcept nogil
    cdef void _rollback(self, int64_t rows) noexcept nogil
    cdef int _fill(self, int64_t max_rows, int64_t max_bytes, int64_t max_wait_ms,
                   int *err_code, int *err_slot, int64_t *err_offset) noexcept nogil
    cdef void _flush_logs(self)
    cdef void _judge_client_errors(self) except *
    cdef bint _broker_answers(self) noexcept nogil
    cdef object _error(self, int code, int slot, int64_t offset)
    cdef str _fatal_reason(self)
    cdef object _take_batch(self)
