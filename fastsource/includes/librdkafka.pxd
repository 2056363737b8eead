# C declarations of the part of librdkafka's API that the compiled consumer uses; every function is
# callable without the GIL (the `nogil` of the extern block).
#
# The C side of these declarations is rdkafka_abi.h. The module is linked against no librdkafka at build
# time: these prototypes describe the ABI of the library that the installed confluent-kafka wheel ships,
# and `fastsource._librdkafka` loads that very
# file with RTLD_GLOBAL before `_core` is imported, so the process holds exactly one librdkafka.
from libc.stdint cimport int32_t, int64_t

cdef extern from "rdkafka_abi.h" nogil:
    ctypedef struct rd_kafka_t
    ctypedef struct rd_kafka_conf_t
    ctypedef struct rd_kafka_topic_t
    ctypedef struct rd_kafka_queue_t
    ctypedef struct rd_kafka_headers_t
    ctypedef struct rd_kafka_metadata_t
    ctypedef struct rd_kafka_error_t
    ctypedef int rd_kafka_resp_err_t
    ctypedef int rd_kafka_conf_res_t
    ctypedef int rd_kafka_type_t
    ctypedef int rd_kafka_timestamp_type_t
    ctypedef long ssize_t

    ctypedef struct rd_kafka_message_t:
        rd_kafka_resp_err_t err
        rd_kafka_topic_t *rkt
        int32_t partition
        void *payload
        size_t len
        void *key
        size_t key_len
        int64_t offset

    ctypedef struct rd_kafka_topic_partition_t:
        char *topic
        int32_t partition
        int64_t offset
        rd_kafka_resp_err_t err

    ctypedef struct rd_kafka_topic_partition_list_t:
        int cnt
        int size
        rd_kafka_topic_partition_t *elems

    int rd_kafka_version()
    const char *rd_kafka_version_str()
    const char *rd_kafka_err2name(rd_kafka_resp_err_t err)
    const char *rd_kafka_err2str(rd_kafka_resp_err_t err)
    rd_kafka_conf_t *rd_kafka_conf_new()
    void rd_kafka_conf_destroy(rd_kafka_conf_t *conf)
    rd_kafka_conf_res_t rd_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                                          char *errstr, size_t errstr_size)
    void rd_kafka_conf_set_opaque(rd_kafka_conf_t *conf, void *opaque)
    void rd_kafka_conf_set_error_cb(
        rd_kafka_conf_t *conf,
        void (*error_cb)(rd_kafka_t *rk, int err, const char *reason, void *opaque) noexcept nogil)
    void rd_kafka_conf_set_log_cb(
        rd_kafka_conf_t *conf,
        void (*log_cb)(const rd_kafka_t *rk, int level, const char *fac,
                       const char *buf) noexcept nogil)
    rd_kafka_t *rd_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                             size_t errstr_size)
    void *rd_kafka_opaque(const rd_kafka_t *rk)
    rd_kafka_resp_err_t rd_kafka_set_log_queue(rd_kafka_t *rk, rd_kafka_queue_t *rkqu)
    void rd_kafka_destroy(rd_kafka_t *rk)
    rd_kafka_resp_err_t rd_kafka_poll_set_consumer(rd_kafka_t *rk)
    rd_kafka_queue_t *rd_kafka_queue_get_consumer(rd_kafka_t *rk)
    void rd_kafka_queue_destroy(rd_kafka_queue_t *rkqu)
    void rd_kafka_queue_yield(rd_kafka_queue_t *rkqu)
    ssize_t rd_kafka_consume_batch_queue(rd_kafka_queue_t *rkqu, int timeout_ms,
                                         rd_kafka_message_t **rkmessages,
                                         size_t rkmessages_size)
    rd_kafka_message_t *rd_kafka_consume_queue(rd_kafka_queue_t *rkqu, int timeout_ms)
    void rd_kafka_message_destroy(rd_kafka_message_t *rkmessage)
    int64_t rd_kafka_message_timestamp(const rd_kafka_message_t *rkmessage,
                                       rd_kafka_timestamp_type_t *tstype)
    rd_kafka_resp_err_t rd_kafka_message_headers(const rd_kafka_message_t *rkmessage,
                                                 rd_kafka_headers_t **hdrsp)
    size_t rd_kafka_header_cnt(const rd_kafka_headers_t *hdrs)
    rd_kafka_resp_err_t rd_kafka_header_get_all(const rd_kafka_headers_t *hdrs, size_t idx,
                                                const char **namep, const void **valuep,
                                                size_t *sizep)
    const char *rd_kafka_topic_name(const rd_kafka_topic_t *rkt)
    rd_kafka_topic_partition_list_t *rd_kafka_topic_partition_list_new(int size)
    void rd_kafka_topic_partition_list_destroy(rd_kafka_topic_partition_list_t *rkparlist)
    rd_kafka_topic_partition_t *rd_kafka_topic_partition_list_add(
        rd_kafka_topic_partition_list_t *rktparlist, const char *topic, int32_t partition)
    rd_kafka_error_t *rd_kafka_incremental_assign(
        rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *partitions)
    rd_kafka_error_t *rd_kafka_incremental_unassign(
        rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *partitions)
    rd_kafka_resp_err_t rd_kafka_error_code(const rd_kafka_error_t *error)
    const char *rd_kafka_error_string(const rd_kafka_error_t *error)
    void rd_kafka_error_destroy(rd_kafka_error_t *error)
    rd_kafka_resp_err_t rd_kafka_commit(rd_kafka_t *rk,
                                        const rd_kafka_topic_partition_list_t *offsets,
                                        int async)
    void rd_kafka_conf_set_offset_commit_cb(
        rd_kafka_conf_t *conf,
        void (*offset_commit_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                 rd_kafka_topic_partition_list_t *offsets,
                                 void *opaque) noexcept nogil)
    rd_kafka_resp_err_t rd_kafka_consumer_close(rd_kafka_t *rk)
    rd_kafka_resp_err_t rd_kafka_fatal_error(rd_kafka_t *rk, char *errstr, size_t errstr_size)
    rd_kafka_resp_err_t rd_kafka_metadata(rd_kafka_t *rk, int all_topics, rd_kafka_topic_t *only_rkt,
                                          const rd_kafka_metadata_t **metadatap,
                                          int timeout_ms)
    void rd_kafka_metadata_destroy(const rd_kafka_metadata_t *metadata)
    rd_kafka_resp_err_t rd_kafka_get_watermark_offsets(rd_kafka_t *rk, const char *topic,
                                                       int32_t partition, int64_t *low,
                                                       int64_t *high)

    enum:
        RD_KAFKA_VERSION
        RD_KAFKA_ABI_SONAME
        RD_KAFKA_CONSUMER
        RD_KAFKA_CONF_OK
        RD_KAFKA_RESP_ERR_NO_ERROR
        RD_KAFKA_RESP_ERR__TRANSPORT
        RD_KAFKA_RESP_ERR__RESOLVE
        RD_KAFKA_RESP_ERR__PARTITION_EOF
        RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
        RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC
        RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN
        RD_KAFKA_RESP_ERR__SSL
        RD_KAFKA_RESP_ERR__AUTHENTICATION
        RD_KAFKA_RESP_ERR__FATAL
        RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET
        RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
        RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE
