# cython: language_level=3, boundscheck=False, wraparound=False
"""Shared by the compiled decoders: decode plans (int32 words + constant bytes), and the schema ids
that a batch of Confluent-framed records names (one pass, GIL released)."""
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset

from fastsource.formats._builders cimport Buf, buf_reserve, buf_free
from fastsource.formats._wire cimport Cursor, Fault, Records, read_header, record_at, records_of


cdef class Plan:
    def __cinit__(self, words, bytes consts=b""):
        cdef int32_t i
        self.size = len(words)
        self.words = <int32_t *> malloc(max(self.size, 1) * sizeof(int32_t))
        if self.words == NULL:
            raise MemoryError()
        for i in range(self.size):
            self.words[i] = words[i]
        self.consts = consts

    def __dealloc__(self):
        free(self.words)


def schema_ids(raw):
    """The distinct schema ids of a binary array of Confluent-framed records, in order of first
    appearance, up to the first record that has no header (decoding stops there anyway)."""
    cdef Records records = records_of(raw)
    cdef Cursor c
    cdef Fault f
    cdef Buf seen
    cdef int64_t i, j, sid, last = -1, count = 0
    cdef int64_t *ids
    cdef int rc = 0
    memset(&seen, 0, sizeof(Buf))
    with nogil:
        for i in range(records.n):
            if not record_at(&records, i, &c):
                continue
            if read_header(&f, &c, &sid) < 0:
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
