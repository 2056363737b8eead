# The Arrow column builders of every compiled unit: the Kafka consumer's raw columns
# (fastsource/kafka/_consumer.pyx) and the decoders (_avro.pyx, _protobuf.pyx). One growable set of
# buffers per node of the output type, filled with the GIL released and handed to Arrow without a copy
# once per batch (ColumnSet.finish in _builders.pyx). Every allocation is checked: a function that
# allocates returns non-zero when it could not, and `node_truncate` puts a node back as it was before
# a record that failed part-way.
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t, INT32_MAX
from libc.stdlib cimport realloc, free
from libc.string cimport memcpy, memset

# Storage kinds of a node (the Arrow type of each node is kept in Python).
cdef enum:
    NODE_NULL = 0      # null type: a length only
    NODE_BOOL = 1      # bit-packed values
    NODE_FIXED = 2     # `width` bytes per value (ints, floats, temporal, decimal, fixed, dictionary indices)
    NODE_BINARY = 3    # int32 offsets + bytes (binary, string)
    NODE_STRUCT = 4    # children of equal length
    NODE_LIST = 5      # int32 offsets into child 0 (list, map)
    NODE_UNION = 6     # dense union: int8 type ids + int32 offsets into the children

# Outcomes of the decoders' steps: 0 is success, anything else names what was wrong.
cdef enum:
    DEC_OK = 0
    DEC_NOMEM = 1
    DEC_TOO_LARGE = 2      # a column past Arrow's 2 GiB offsets in one batch


cdef struct Buf:
    char *data
    int64_t size
    int64_t cap


cdef struct Node:
    int32_t kind
    int32_t width
    int32_t nullable
    int32_t nchildren
    int32_t *children
    int32_t null_child      # NODE_UNION: index among the children of the null branch, or -1
    int64_t length
    int64_t nulls
    int32_t has_validity
    Buf validity
    Buf data                # NODE_UNION: the type ids
    Buf offsets             # NODE_BINARY, NODE_LIST, NODE_UNION


cdef inline int buf_reserve(Buf *b, int64_t extra) noexcept nogil:
    cdef int64_t need = b.size + extra
    cdef int64_t newcap
    cdef char *p
    if need <= b.cap:
        return 0
    newcap = b.cap * 2
    if newcap < need:
        newcap = need
    if newcap < 64:
        newcap = 64
    p = <char *> realloc(b.data, newcap)
    if p == NULL:
        return -1
    b.data = p
    b.cap = newcap
    return 0


cdef inline void buf_free(Buf *b) noexcept nogil:
    free(b.data)
    b.data = NULL
    b.size = 0
    b.cap = 0


cdef inline int bits_append(Buf *b, int64_t i, bint value) noexcept nogil:
    """Set bit `i` (the next one) of a bitmap held in `b`."""
    if (i >> 3) >= b.size:
        if buf_reserve(b, 1) < 0:
            return -1
        b.data[b.size] = 0
        b.size += 1
    if value:
        b.data[i >> 3] |= <char> (1 << (i & 7))
    return 0


cdef inline int validity_start(Node *n) noexcept nogil:
    """The node's first null: a bitmap with every earlier slot valid."""
    cdef int64_t full = n.length >> 3
    cdef int64_t i
    if buf_reserve(&n.validity, full + 1) < 0:
        return -1
    memset(n.validity.data, 0xFF, full)
    n.validity.size = full
    if n.length & 7:
        n.validity.data[full] = <char> ((1 << (n.length & 7)) - 1)
        n.validity.size = full + 1
    n.has_validity = 1
    return 0


cdef inline int node_mark(Node *n, bint valid) noexcept nogil:
    """Count one slot of `n`, valid or null (its value, if any, is already stored)."""
    if not valid:
        if not n.has_validity and validity_start(n) < 0:
            return -1
        n.nulls += 1
    if n.has_validity and bits_append(&n.validity, n.length, valid) < 0:
        return -1
    n.length += 1
    return 0


cdef inline int node_put_fixed(Node *n, const void *value) noexcept nogil:
    """One valid value of `n.width` bytes."""
    if n.data.size + n.width > n.data.cap and buf_reserve(&n.data, n.width) < 0:
        return -1
    if n.width > 0:  # a fixed of size 0 never allocates: memcpy(NULL, ..., 0) is undefined
        memcpy(n.data.data + n.data.size, value, n.width)
    n.data.size += n.width
    if n.has_validity:
        return node_mark(n, 1)
    n.length += 1
    return 0


cdef inline int node_put_i8(Node *n, int8_t v) noexcept nogil:
    if n.data.size + 1 > n.data.cap and buf_reserve(&n.data, 1) < 0:
        return -1
    n.data.data[n.data.size] = <char> v
    n.data.size += 1
    if n.has_validity:
        return node_mark(n, 1)
    n.length += 1
    return 0


cdef inline int node_put_i32(Node *n, int32_t v) noexcept nogil:
    if n.data.size + 4 > n.data.cap and buf_reserve(&n.data, 4) < 0:
        return -1
    memcpy(n.data.data + n.data.size, &v, 4)
    n.data.size += 4
    if n.has_validity:
        return node_mark(n, 1)
    n.length += 1
    return 0


cdef inline int node_put_i64(Node *n, int64_t v) noexcept nogil:
    if n.data.size + 8 > n.data.cap and buf_reserve(&n.data, 8) < 0:
        return -1
    memcpy(n.data.data + n.data.size, &v, 8)
    n.data.size += 8
    if n.has_validity:
        return node_mark(n, 1)
    n.length += 1
    return 0


cdef inline int node_put_f32(Node *n, float v) noexcept nogil:
    cdef int32_t bits
    memcpy(&bits, &v, 4)
    return node_put_i32(n, bits)


cdef inline int node_put_f64(Node *n, double v) noexcept nogil:
    cdef int64_t bits
    memcpy(&bits, &v, 8)
    return node_put_i64(n, bits)


cdef inline int node_put_bool(Node *n, bint v) noexcept nogil:
    if bits_append(&n.data, n.length, v) < 0:
        return -1
    return node_mark(n, 1)


cdef inline int node_put_bytes(Node *n, const uint8_t *p, int64_t size) noexcept nogil:
    """One valid binary/string value; DEC_TOO_LARGE past 2 GiB of values in the batch."""
    cdef int32_t end
    if n.data.size + size > INT32_MAX:
        return DEC_TOO_LARGE
    if buf_reserve(&n.data, size) < 0 or buf_reserve(&n.offsets, 4) < 0:
        return DEC_NOMEM
    if size > 0:  # an empty value may come before the data buffer exists: memcpy(NULL, ..., 0) is undefined
        memcpy(n.data.data + n.data.size, p, size)
    n.data.size += size
    end = <int32_t> n.data.size
    memcpy(n.offsets.data + n.offsets.size, &end, 4)
    n.offsets.size += 4
    if n.has_validity:
        return DEC_NOMEM if node_mark(n, 1) < 0 else 0
    n.length += 1
    return 0


cdef inline int node_close_list(Node *n, Node *child, bint valid) noexcept nogil:
    """End one list/map slot of `n` at the child's current length."""
    cdef int32_t end
    if child.length > INT32_MAX:
        return DEC_TOO_LARGE
    end = <int32_t> child.length
    if buf_reserve(&n.offsets, 4) < 0:
        return DEC_NOMEM
    memcpy(n.offsets.data + n.offsets.size, &end, 4)
    n.offsets.size += 4
    return DEC_NOMEM if node_mark(n, valid) < 0 else 0


cdef inline int node_put_union(Node *n, int32_t branch, Node *child) noexcept nogil:
    """One dense-union slot pointing at the child's next value (appended by the caller)."""
    cdef int32_t at
    if child.length > INT32_MAX:
        return DEC_TOO_LARGE
    at = <int32_t> child.length
    if buf_reserve(&n.data, 1) < 0 or buf_reserve(&n.offsets, 4) < 0:
        return DEC_NOMEM
    n.data.data[n.data.size] = <char> branch
    n.data.size += 1
    memcpy(n.offsets.data + n.offsets.size, &at, 4)
    n.offsets.size += 4
    n.length += 1
    return 0


cdef inline int node_put_empty(Node *n) noexcept nogil:
    """`node_absent` of a scalar node (bool, fixed width, binary): null where the node is nullable,
    else its zero or empty value. Not recursive, so the hot loops that append nulls get it inlined."""
    if n.kind == NODE_BINARY:
        if buf_reserve(&n.offsets, 4) < 0:
            return DEC_NOMEM
        memcpy(n.offsets.data + n.offsets.size, n.offsets.data + n.offsets.size - 4, 4)
        n.offsets.size += 4
    elif n.kind == NODE_FIXED:
        if buf_reserve(&n.data, n.width) < 0:
            return DEC_NOMEM
        if n.width > 0:  # a fixed of size 0 never allocates: memset(NULL, 0, 0) is undefined
            memset(n.data.data + n.data.size, 0, n.width)
        n.data.size += n.width
    elif bits_append(&n.data, n.length, 0) < 0:
        return DEC_NOMEM
    return DEC_NOMEM if node_mark(n, not n.nullable) < 0 else DEC_OK


cdef inline int node_absent(Node *nodes, int32_t index) noexcept nogil:
    """A slot for a value that is not there: null where the node is nullable, otherwise the type's
    empty value (zero, empty, an empty list, a struct of absent children) so that every child of a
    struct keeps its parent's length."""
    cdef Node *n = &nodes[index]
    cdef int32_t i, branch
    cdef int rc
    cdef bint valid = not n.nullable
    if n.kind == NODE_NULL:
        n.length += 1
        n.nulls += 1
        return 0
    if n.kind == NODE_BOOL or n.kind == NODE_FIXED or n.kind == NODE_BINARY:
        return node_put_empty(n)
    elif n.kind == NODE_STRUCT:
        for i in range(n.nchildren):
            rc = node_absent(nodes, n.children[i])
            if rc:
                return rc
    elif n.kind == NODE_LIST:
        return node_close_list(n, &nodes[n.children[0]], valid)
    elif n.kind == NODE_UNION:
        branch = n.null_child if n.null_child >= 0 else 0
        rc = node_put_union(n, branch, &nodes[n.children[branch]])
        return rc if rc else node_absent(nodes, n.children[branch])
    return DEC_NOMEM if node_mark(n, valid) < 0 else 0


cdef inline int node_put_zero(Node *n) noexcept nogil:
    """One valid slot holding the zero of a scalar node (0, false, empty)."""
    cdef bint nullable = n.nullable
    cdef int rc
    n.nullable = 0
    rc = node_absent(n, 0)
    n.nullable = nullable
    return rc


cdef inline void bits_truncate(Buf *b, int64_t length) noexcept nogil:
    """Keep the first `length` bits of a bitmap; the bits after them in its last byte are cleared
    (`bits_append` only sets bits)."""
    b.size = (length + 7) >> 3
    if length & 7:
        b.data[length >> 3] &= <char> ((1 << (length & 7)) - 1)


cdef inline int64_t bits_unset(const Buf *b, int64_t length) noexcept nogil:
    """How many of the first `length` bits of a bitmap are 0."""
    cdef int64_t i, unset = 0
    for i in range(length):
        if not (b.data[i >> 3] >> (i & 7)) & 1:
            unset += 1
    return unset


cdef inline void node_truncate(Node *nodes, int32_t index, int64_t length) noexcept nogil:
    """Drop the slots of node `index` from `length` on, with what its descendants hold for them: the
    builders as they were before a record that failed part-way (no stale length or count is left)."""
    cdef Node *n = &nodes[index]
    cdef int32_t end = 0
    cdef int32_t i
    cdef int64_t k, keep
    if length >= n.length:
        return
    if n.kind == NODE_FIXED:
        n.data.size = length * n.width
    elif n.kind == NODE_BOOL:
        bits_truncate(&n.data, length)
    elif n.kind == NODE_BINARY:
        n.offsets.size = (length + 1) * 4
        memcpy(&end, n.offsets.data + length * 4, 4)
        n.data.size = end
    elif n.kind == NODE_STRUCT:
        for i in range(n.nchildren):
            node_truncate(nodes, n.children[i], length)
    elif n.kind == NODE_LIST:
        n.offsets.size = (length + 1) * 4
        memcpy(&end, n.offsets.data + length * 4, 4)
        node_truncate(nodes, n.children[0], end)
    elif n.kind == NODE_UNION:
        # Each branch keeps the values that the kept slots point at (slots of a branch point at its
        # values in order, so that is one past the last kept slot's offset).
        for i in range(n.nchildren):
            keep = 0
            for k in range(length):
                if n.data.data[k] == i:
                    memcpy(&end, n.offsets.data + k * 4, 4)
                    keep = end + 1
            node_truncate(nodes, n.children[i], keep)
        n.data.size = length
        n.offsets.size = length * 4
    if n.has_validity:
        bits_truncate(&n.validity, length)
        n.nulls = bits_unset(&n.validity, length)
    elif n.kind == NODE_NULL:
        n.nulls = length
    else:
        n.nulls = 0
    n.length = length


cdef object buf_take(Buf *b)
cdef object adopt_buffer(void *ptr, int64_t size, int64_t cap=*)


cdef inline void node_retract(Node *n) noexcept nogil:
    """Drop the last slot of a scalar node (a repeated singular field: the last value wins)."""
    cdef int64_t i = n.length - 1
    cdef int32_t end
    if i < 0:
        return
    if n.has_validity:
        if not (n.validity.data[i >> 3] >> (i & 7)) & 1:
            n.nulls -= 1
        n.validity.data[i >> 3] &= <char> ~(1 << (i & 7))
        n.validity.size = (i + 7) >> 3
    if n.kind == NODE_BOOL:
        n.data.data[i >> 3] &= <char> ~(1 << (i & 7))
        n.data.size = (i + 7) >> 3
    elif n.kind == NODE_FIXED:
        n.data.size -= n.width
    elif n.kind == NODE_BINARY:
        n.offsets.size -= 4
        memcpy(&end, n.offsets.data + n.offsets.size - 4, 4)
        n.data.size = end
    n.length = i


cdef inline bint utf8_valid(const uint8_t *p, int64_t size) noexcept nogil:
    """Whether `p[:size]` is well-formed UTF-8 (no overlong forms, surrogates or code points past
    U+10FFFF); ASCII runs are checked eight bytes at a time."""
    cdef const uint8_t *end = p + size
    cdef uint64_t word
    cdef uint8_t c, c1
    cdef int need
    while p < end:
        if end - p >= 8:
            memcpy(&word, p, 8)
            if (word & 0x8080808080808080ULL) == 0:
                p += 8
                continue
        c = p[0]
        if c < 0x80:
            p += 1
            continue
        if c < 0xC2 or c > 0xF4:
            return 0
        need = 1 if c < 0xE0 else (2 if c < 0xF0 else 3)
        if end - p <= need:
            return 0
        c1 = p[1]
        if (c1 & 0xC0) != 0x80:
            return 0
        if c == 0xE0 and c1 < 0xA0:
            return 0
        if c == 0xED and c1 > 0x9F:
            return 0
        if c == 0xF0 and c1 < 0x90:
            return 0
        if c == 0xF4 and c1 > 0x8F:
            return 0
        if need >= 2 and (p[2] & 0xC0) != 0x80:
            return 0
        if need == 3 and (p[3] & 0xC0) != 0x80:
            return 0
        p += need + 1
    return 1


cdef class BatchLayout:
    """A layout (one tuple per node, see _builders.pyx) and the bytes per row each buffer of its
    nodes held in the last batch, so that the next batch's buffers are reserved at once."""
    cdef readonly list nodes
    cdef int32_t count
    cdef double *per_row      # 3 per node: validity, data, offsets


cdef class ColumnSet:
    """The builders of one batch: one Node per node of a layout (see _builders.pyx)."""
    cdef Node *nodes
    cdef int32_t count
    cdef BatchLayout layout
    cdef bint noted

    cdef int64_t _expected(self, int32_t node, int which, int64_t rows)
    cdef void note_sizes(self)
