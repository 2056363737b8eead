# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The JSON pre-scan: one newline-delimited buffer from a binary array of JSON values, each record
checked on the way (includes/json_scan.h) so that pyarrow's JSON reader only sees well-framed objects
of bounded depth in valid UTF-8. It returns codes; their words are `fastsource.errors.JSON_PROBLEMS`."""
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy

import pyarrow as pa


def json_lines(raw, int64_t max_depth=64):
    """`(buffer, longest, nulls, None)` or, for the first record that fails the check,
    `(None, 0, None, (row, problem, byte))`.

    Row i of the buffer is record i; null, empty and `null` values become `{}` and are marked in the
    null mask `nulls` (None when there are none); `longest` is the length of the longest line. One
    pass, one allocation. `problem` is a code of includes/json_scan.h above FS_JSON_NULL."""
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
        return None, 0, None, (bad_row, status, where)
    buffer = adopt_buffer(out, pos)
    if nulls == 0:
        free(null_bits)
        return buffer, longest, None, None
    mask = adopt_buffer(null_bits, (n >> 3) + 1)
    return buffer, longest, pa.Array.from_buffers(pa.bool_(), n, [None, mask]), None
