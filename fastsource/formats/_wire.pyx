# cython: language_level=3, boundscheck=False, wraparound=False
"""Confluent's wire format over a whole batch: the schema ids its records name (compiled, GIL released)."""
from libc.stdint cimport int32_t, int64_t, uint8_t, uintptr_t
from libc.string cimport memset

from fastsource.formats._builders cimport Buf, buf_reserve, buf_free
from fastsource.formats._wire cimport header_id, is_null


def schema_ids(raw):
    """The distinct schema ids of a binary array of Confluent-framed records, in order of first
    appearance, up to the first record that has no header (decoding stops there anyway)."""
    cdef int64_t n = len(raw)
    cdef int64_t first = raw.offset
    buffers = raw.buffers()
    cdef const int32_t *o = (<const int32_t *> <uintptr_t> buffers[1].address) + first
    cdef const uint8_t *bits = NULL if buffers[0] is None else <const uint8_t *> <uintptr_t> buffers[0].address
    cdef const uint8_t *d = NULL if buffers[2] is None else <const uint8_t *> <uintptr_t> buffers[2].address
    cdef Buf seen
    cdef int64_t i, j, sid, last = -1, count = 0
    cdef int64_t *ids
    cdef int rc = 0
    memset(&seen, 0, sizeof(Buf))
    with nogil:
        for i in range(n):
            if is_null(bits, first + i):
                continue
            sid = header_id(d + o[i], o[i + 1] - o[i])
            if sid < 0:
                break
            if sid == last:
                continue
            last = sid
            ids = <int64_t *> seen.data
            for j in range(count):
                if ids[j] == sid:
                    break
            else:
                if buf_reserve(&seen, 8) < 0:
                    rc = -1
                    break
                (<int64_t *> seen.data)[count] = sid
                count += 1
                seen.size += 8
    try:
        if rc < 0:
            raise MemoryError()
        return [(<int64_t *> seen.data)[j] for j in range(count)]
    finally:
        buf_free(&seen)


