# Reading primitives shared by the compiled decoders (_avro.pyx, _protobuf.pyx): a cursor over one
# record, varints, Confluent's header, and the fault that says what was wrong and where.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t, uintptr_t

from fastsource.formats._builders cimport DEC_NOMEM, DEC_TOO_LARGE

# What was wrong with a record (codes shared by the decoders; each adds its own from 32 on).
cdef enum:
    ERR_NOMEM = DEC_NOMEM
    ERR_TOO_LARGE = DEC_TOO_LARGE
    ERR_NOT_WIRE = 3         # a: first byte (-1: shorter than the header)
    ERR_SCHEMA = 4           # a: schema id that has no plan (unknown, or unusable)
    ERR_TRUNCATED = 5
    ERR_VARINT = 6           # a varint longer than 10 bytes
    ERR_NEG_LENGTH = 7       # a: length
    ERR_LENGTH = 8           # a: length, b: bytes left
    ERR_UTF8 = 9
    ERR_TRAILING = 10        # a: bytes left after the datum
    ERR_DEPTH = 11           # a: max_depth


cdef struct Cursor:
    const uint8_t *p
    const uint8_t *end


cdef struct Fault:
    int code
    int64_t a
    int64_t b
    const uint8_t *at


cdef inline int fault(Fault *f, Cursor *c, int code, int64_t a, int64_t b) noexcept nogil:
    f.code = code
    f.a = a
    f.b = b
    f.at = c.p
    return -1


cdef inline int read_varint(Fault *f, Cursor *c, uint64_t *out) noexcept nogil:
    """An unsigned varint of at most 10 bytes."""
    cdef const uint8_t *p = c.p
    cdef uint64_t result = 0
    cdef uint8_t byte
    cdef int shift = 0
    if p < c.end and p[0] < 0x80:
        out[0] = p[0]
        c.p = p + 1
        return 0
    while True:
        if p >= c.end:
            return fault(f, c, ERR_TRUNCATED, 0, 0)
        byte = p[0]
        p += 1
        result |= (<uint64_t> (byte & 0x7F)) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            return fault(f, c, ERR_VARINT, 0, 0)
    c.p = p
    out[0] = result
    return 0


cdef inline int take(Fault *f, Cursor *c, int64_t size, const uint8_t **out) noexcept nogil:
    """The next `size` bytes."""
    if c.end - c.p < size:
        return fault(f, c, ERR_TRUNCATED, 0, 0)
    out[0] = c.p
    c.p += size
    return 0


cdef inline bint is_null(const uint8_t *bits, int64_t row) noexcept nogil:
    return bits != NULL and not (bits[row >> 3] >> (row & 7)) & 1


cdef inline int64_t header_id(const uint8_t *p, int64_t size) noexcept nogil:
    """The schema id of a Confluent header (magic byte 0, 4-byte big-endian id), or -1 when the
    record has none."""
    if size < 5 or p[0] != 0:
        return -1
    return (<int64_t> p[1] << 24) | (<int64_t> p[2] << 16) | (<int64_t> p[3] << 8) | p[4]


cdef inline int read_header(Fault *f, Cursor *c, int64_t *schema_id) noexcept nogil:
    """Confluent's 5-byte header at the cursor: its schema id, and the cursor past it."""
    schema_id[0] = header_id(c.p, c.end - c.p)
    if schema_id[0] < 0:
        return fault(f, c, ERR_NOT_WIRE, c.p[0] if c.end - c.p >= 5 else -1, 0)
    c.p += 5
    return 0


# pyarrow's type ids of binary and string (the layouts with 32-bit offsets that records_of reads).
cdef enum:
    STRING_TYPE_ID = 13
    BINARY_TYPE_ID = 14


cdef struct Records:
    int64_t n
    int64_t first
    const int32_t *offsets
    const uint8_t *validity
    const uint8_t *data


cdef inline Records records_of(object raw) except *:
    """A view of a pyarrow binary array's buffers (valid while `raw` lives)."""
    cdef Records r
    if raw.type.id not in (BINARY_TYPE_ID, STRING_TYPE_ID):  # 32-bit offsets only (see formats.as_binary)
        raise TypeError(f"a binary array of records expected, not {raw.type}")
    buffers = raw.buffers()
    r.n = len(raw)
    r.first = raw.offset
    r.offsets = (<const int32_t *> <uintptr_t> buffers[1].address) + r.first
    r.validity = NULL if buffers[0] is None else <const uint8_t *> <uintptr_t> buffers[0].address
    r.data = NULL if buffers[2] is None else <const uint8_t *> <uintptr_t> buffers[2].address
    return r


cdef inline bint record_at(const Records *r, int64_t i, Cursor *c) noexcept nogil:
    """Point the cursor at record `i`; False when the record is null."""
    c.p = r.data + r.offsets[i]
    c.end = r.data + r.offsets[i + 1]
    return not is_null(r.validity, r.first + i)


cdef class Plan:
    """A decode plan: the int32 words of its program and the constant bytes it reads (see _wire.pyx)."""
    cdef int32_t *words
    cdef int32_t size
    cdef bytes consts
