# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled Protobuf decoder: runs the decode plan of a message descriptor (made by
fastsource/formats/protobuf.py) over every record of a batch with the GIL released, appending into
the column builders of _builders.pyx. No Python object per record."""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t, uintptr_t, INT64_MAX, INT64_MIN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from fastsource.formats._builders cimport *
from fastsource.formats._wire cimport *

# Plan layout. A message: MSG_WORDS header words, then `nfields` fields of FIELD_WORDS words each,
# then (when `table` >= 0) a table from field number to field index up to `maxnum`.
cdef enum:
    MSG_NODE = 0
    MSG_NFIELDS = 1
    MSG_MAXNUM = 2
    MSG_TABLE = 3        # pc of the number table, or -1: search the fields
    MSG_WORDS = 4
    F_NUMBER = 0
    F_KIND = 1           # a FieldDescriptor type (1..18) or one of the K_* kinds below
    F_WIRE = 2           # the wire type a value of the field has
    F_NODE = 3           # the value's node; for repeated fields the list's node
    F_FLAGS = 4
    F_SUB = 5            # message: plan pc; enum: pc of (number, index) pairs sorted by number
    F_EXTRA = 6          # enum: number of pairs; wrapper: the wrapped kind
    F_ELEM = 7           # repeated: the elements' node
    F_ONEOF = 8          # 1 + the index of the field's oneof in its message, or 0
    FIELD_WORDS = 9

cdef enum:
    T_DOUBLE = 1
    T_FLOAT = 2
    T_INT64 = 3
    T_UINT64 = 4
    T_INT32 = 5
    T_FIXED64 = 6
    T_FIXED32 = 7
    T_BOOL = 8
    T_STRING = 9
    T_MESSAGE = 11
    T_BYTES = 12
    T_UINT32 = 13
    T_ENUM = 14
    T_SFIXED32 = 15
    T_SFIXED64 = 16
    T_SINT32 = 17
    T_SINT64 = 18
    K_TIMESTAMP = 30     # google.protobuf.Timestamp as nanoseconds
    K_DURATION = 31      # google.protobuf.Duration as nanoseconds
    K_WRAPPER = 32       # google.protobuf.*Value as its nullable value

cdef enum:
    FLAG_REPEATED = 1
    FLAG_PACKABLE = 2

cdef enum:
    ERR_WIRE_TYPE = 32       # a: wire type
    ERR_FIELD_ZERO = 33
    ERR_ENUM_VALUE = 34      # a: number
    ERR_DUP_MESSAGE = 35     # a: field number
    ERR_RANGE = 36           # a: seconds, b: nanos
    ERR_INDEXES = 37         # a: message-index count
    ERR_GROUP = 38           # a: field number of an end-group without its start

ERRORS = {name: value for name, value in (
    ("NOMEM", ERR_NOMEM), ("TOO_LARGE", ERR_TOO_LARGE), ("NOT_WIRE", ERR_NOT_WIRE), ("SCHEMA", ERR_SCHEMA),
    ("TRUNCATED", ERR_TRUNCATED), ("VARINT", ERR_VARINT), ("LENGTH", ERR_LENGTH), ("UTF8", ERR_UTF8),
    ("DEPTH", ERR_DEPTH), ("WIRE_TYPE", ERR_WIRE_TYPE), ("FIELD_ZERO", ERR_FIELD_ZERO),
    ("ENUM_VALUE", ERR_ENUM_VALUE), ("DUP_MESSAGE", ERR_DUP_MESSAGE), ("RANGE", ERR_RANGE),
    ("INDEXES", ERR_INDEXES), ("GROUP", ERR_GROUP))}
LAYOUT = {name: value for name, value in (
    ("MSG_WORDS", MSG_WORDS), ("FIELD_WORDS", FIELD_WORDS), ("TIMESTAMP", K_TIMESTAMP),
    ("DURATION", K_DURATION), ("WRAPPER", K_WRAPPER), ("REPEATED", FLAG_REPEATED), ("SEEN_FIELDS", SEEN_WORDS * 64), ("PACKABLE", FLAG_PACKABLE))}

# A message has at most this many fields (the per-message "seen" bits live on the C stack).
cdef enum:
    SEEN_WORDS = 16


cdef struct Vm:
    Fault f
    const int32_t *plan
    Node *nodes
    int32_t max_depth


cdef inline int stored(Vm *vm, Cursor *c, int rc) noexcept nogil:
    if rc == 0:
        return 0
    return fault(&vm.f, c, rc if rc > 0 else ERR_NOMEM, 0, 0)


cdef inline int read_length(Vm *vm, Cursor *c, int64_t *out) noexcept nogil:
    """A length-delimited value's length (an error points at the length)."""
    cdef const uint8_t *start = c.p
    cdef uint64_t raw
    cdef int64_t left
    if read_varint(&vm.f, c, &raw) < 0:
        return -1
    left = c.end - c.p
    if raw > <uint64_t> left:
        c.p = start
        return fault(&vm.f, c, ERR_LENGTH, <int64_t> raw if raw <= <uint64_t> INT64_MAX else -1, left)
    out[0] = <int64_t> raw
    return 0


cdef int skip_field(Vm *vm, Cursor *c, uint32_t wire, uint64_t number, int32_t depth) noexcept nogil:
    """Skip a value of an unknown field (groups included, nested at most max_depth deep)."""
    cdef uint64_t raw
    cdef int64_t size
    cdef const uint8_t *p
    if wire == 0:
        return read_varint(&vm.f, c, &raw)
    if wire == 1:
        return take(&vm.f, c, 8, &p)
    if wire == 5:
        return take(&vm.f, c, 4, &p)
    if wire == 2:
        if read_length(vm, c, &size) < 0:
            return -1
        c.p += size
        return 0
    if wire == 3:
        if depth >= vm.max_depth:
            return fault(&vm.f, c, ERR_DEPTH, vm.max_depth, 0)
        while True:
            if read_varint(&vm.f, c, &raw) < 0:
                return -1
            if (raw & 7) == 4:
                if (raw >> 3) != number:
                    return fault(&vm.f, c, ERR_GROUP, <int64_t> (raw >> 3), 0)
                return 0
            if (raw >> 3) == 0:
                return fault(&vm.f, c, ERR_FIELD_ZERO, 0, 0)
            if skip_field(vm, c, raw & 7, raw >> 3, depth + 1) < 0:
                return -1
    if wire == 4:
        return fault(&vm.f, c, ERR_GROUP, <int64_t> number, 0)
    return fault(&vm.f, c, ERR_WIRE_TYPE, wire, 0)


cdef int enum_index(const int32_t *pairs, int32_t count, int32_t number) noexcept nogil:
    """The dictionary index of an enum number, or -1."""
    cdef int32_t lo = 0, hi = count - 1, mid
    while lo <= hi:
        mid = (lo + hi) >> 1
        if pairs[2 * mid] == number:
            return pairs[2 * mid + 1]
        if pairs[2 * mid] < number:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1


cdef int put_scalar(Vm *vm, Cursor *c, int32_t kind, Node *n, const int32_t *field) noexcept nogil:
    """One value of a scalar kind, read at the cursor, appended to `n`."""
    cdef uint64_t raw
    cdef int64_t size
    cdef const uint8_t *p
    cdef int32_t index
    cdef int rc
    if kind == T_STRING or kind == T_BYTES:
        if read_length(vm, c, &size) < 0:
            return -1
        p = c.p
        if kind == T_STRING and not utf8_valid(p, size):
            return fault(&vm.f, c, ERR_UTF8, 0, 0)
        c.p += size
        return stored(vm, c, node_put_bytes(n, p, size))
    if kind == T_DOUBLE or kind == T_FIXED64 or kind == T_SFIXED64:
        if take(&vm.f, c, 8, &p) < 0:
            return -1
        return stored(vm, c, node_put_fixed(n, p))
    if kind == T_FLOAT or kind == T_FIXED32 or kind == T_SFIXED32:
        if take(&vm.f, c, 4, &p) < 0:
            return -1
        return stored(vm, c, node_put_fixed(n, p))
    if read_varint(&vm.f, c, &raw) < 0:
        return -1
    if kind == T_INT64 or kind == T_UINT64:
        rc = node_put_i64(n, <int64_t> raw)
    elif kind == T_INT32 or kind == T_UINT32:
        rc = node_put_i32(n, <int32_t> <uint32_t> raw)
    elif kind == T_SINT64:
        rc = node_put_i64(n, <int64_t> ((raw >> 1) ^ (0 - (raw & 1))))
    elif kind == T_SINT32:
        raw = <uint32_t> raw
        rc = node_put_i32(n, <int32_t> <uint32_t> ((raw >> 1) ^ (0 - (raw & 1))))
    elif kind == T_BOOL:
        rc = node_put_bool(n, raw != 0)
    elif kind == T_ENUM:
        index = enum_index(vm.plan + field[F_SUB], field[F_EXTRA], <int32_t> raw)
        if index < 0:
            return fault(&vm.f, c, ERR_ENUM_VALUE, <int32_t> raw, 0)
        rc = node_put_i32(n, index)
    else:
        return fault(&vm.f, c, ERR_WIRE_TYPE, -1, 0)
    return stored(vm, c, rc)


cdef int put_special(Vm *vm, Cursor *c, int32_t kind, Node *n, const int32_t *field) noexcept nogil:
    """A Timestamp, Duration or wrapper message (length-delimited) as one value of `n`; a field of
    it that is absent counts as its zero, as protobuf defines."""
    cdef int64_t size, seconds = 0, nanos = 0, value
    cdef uint64_t tag, raw
    cdef Cursor inner, last
    cdef bint found = 0
    if read_length(vm, c, &size) < 0:
        return -1
    inner.p = c.p
    inner.end = c.p + size
    c.p += size
    while inner.p < inner.end:
        if read_varint(&vm.f, &inner, &tag) < 0:
            return -1
        if (tag >> 3) == 0:
            return fault(&vm.f, &inner, ERR_FIELD_ZERO, 0, 0)
        if kind != K_WRAPPER and (tag >> 3) <= 2 and (tag & 7) == 0:
            if read_varint(&vm.f, &inner, &raw) < 0:
                return -1
            if (tag >> 3) == 1:
                seconds = <int64_t> raw
            else:
                nanos = <int32_t> <uint32_t> raw
        elif kind == K_WRAPPER and (tag >> 3) == 1 and (tag & 7) == wire_of(field[F_EXTRA]):
            last = inner
            found = 1
            if skip_field(vm, &inner, tag & 7, 1, 0) < 0:
                return -1
        elif skip_field(vm, &inner, tag & 7, tag >> 3, 0) < 0:
            return -1
    if kind == K_WRAPPER:
        if found:
            return put_scalar(vm, &last, field[F_EXTRA], n, field)
        return stored(vm, c, node_put_zero(n))
    if seconds > INT64_MAX // 1000000000 or seconds < INT64_MIN // 1000000000 + 1:
        return fault(&vm.f, c, ERR_RANGE, seconds, nanos)
    value = seconds * 1000000000 + nanos
    return stored(vm, c, node_put_i64(n, value))


cdef inline uint32_t wire_of(int32_t kind) noexcept nogil:
    if kind == T_DOUBLE or kind == T_FIXED64 or kind == T_SFIXED64:
        return 1
    if kind == T_FLOAT or kind == T_FIXED32 or kind == T_SFIXED32:
        return 5
    if kind == T_STRING or kind == T_BYTES or kind == T_MESSAGE:
        return 2
    return 0


cdef int put_value(Vm *vm, Cursor *c, const int32_t *field, Node *n, int32_t node, int32_t depth) noexcept nogil:
    """One value of a field (an element, for repeated fields) into node `node`."""
    cdef int32_t kind = field[F_KIND]
    cdef int64_t size
    cdef Cursor inner
    if kind == T_MESSAGE:
        if read_length(vm, c, &size) < 0:
            return -1
        inner.p = c.p
        inner.end = c.p + size
        c.p += size
        return decode_message(vm, &inner, field[F_SUB], depth + 1)
    if kind >= K_TIMESTAMP:
        return put_special(vm, c, kind, n, field)
    return put_scalar(vm, c, kind, n, field)


cdef int decode_message(Vm *vm, Cursor *c, int32_t pc, int32_t depth) noexcept nogil:
    """The message at the cursor (to its end) as one slot of its struct node."""
    cdef const int32_t *m = vm.plan + pc
    cdef const int32_t *field
    cdef const int32_t *fields = m + MSG_WORDS
    cdef int32_t nfields = m[MSG_NFIELDS]
    cdef uint64_t seen[SEEN_WORDS]
    cdef uint64_t tag, number
    cdef uint32_t wire
    cdef int32_t index, i, lo, hi, mid
    cdef Node *n
    cdef int64_t size
    cdef const uint8_t *end
    if depth > vm.max_depth:
        return fault(&vm.f, c, ERR_DEPTH, vm.max_depth, 0)
    if m[MSG_NODE] >= 0 and node_mark(&vm.nodes[m[MSG_NODE]], 1) < 0:
        return fault(&vm.f, c, ERR_NOMEM, 0, 0)
    memset(seen, 0, ((nfields + 63) >> 6) * 8)
    while c.p < c.end:
        if read_varint(&vm.f, c, &tag) < 0:
            return -1
        number = tag >> 3
        wire = tag & 7
        if number == 0:
            return fault(&vm.f, c, ERR_FIELD_ZERO, 0, 0)
        index = -1
        if m[MSG_TABLE] >= 0:
            if number <= <uint64_t> m[MSG_MAXNUM]:
                index = vm.plan[m[MSG_TABLE] + number]
        else:
            lo = 0
            hi = nfields - 1
            while lo <= hi:
                mid = (lo + hi) >> 1
                if <uint64_t> fields[mid * FIELD_WORDS + F_NUMBER] == number:
                    index = mid
                    break
                if <uint64_t> fields[mid * FIELD_WORDS + F_NUMBER] < number:
                    lo = mid + 1
                else:
                    hi = mid - 1
        if index < 0:
            if skip_field(vm, c, wire, number, depth) < 0:
                return -1
            continue
        field = fields + index * FIELD_WORDS
        if field[F_FLAGS] & FLAG_REPEATED:
            n = &vm.nodes[field[F_ELEM]]
            if wire == 2 and field[F_FLAGS] & FLAG_PACKABLE:
                if read_length(vm, c, &size) < 0:
                    return -1
                end = c.end
                c.end = c.p + size
                while c.p < c.end:
                    if put_scalar(vm, c, field[F_KIND], n, field) < 0:
                        return -1
                c.end = end
            elif wire != <uint32_t> field[F_WIRE]:
                if skip_field(vm, c, wire, number, depth) < 0:
                    return -1
            elif put_value(vm, c, field, n, field[F_ELEM], depth) < 0:
                return -1
            continue
        if wire != <uint32_t> field[F_WIRE]:  # protobuf reads a mismatched wire type as an unknown field
            if skip_field(vm, c, wire, number, depth) < 0:
                return -1
            continue
        n = &vm.nodes[field[F_NODE]]
        if field[F_ONEOF]:  # setting a member of a oneof clears the others
            for i in range(nfields):
                if i != index and fields[i * FIELD_WORDS + F_ONEOF] == field[F_ONEOF] \
                        and seen[i >> 6] & (1ULL << (i & 63)):
                    if fields[i * FIELD_WORDS + F_KIND] == T_MESSAGE:
                        return fault(&vm.f, c, ERR_DUP_MESSAGE, <int64_t> number, 0)
                    node_retract(&vm.nodes[fields[i * FIELD_WORDS + F_NODE]])
                    seen[i >> 6] &= ~(1ULL << (i & 63))
        if seen[index >> 6] & (1ULL << (index & 63)):
            if field[F_KIND] == T_MESSAGE:
                return fault(&vm.f, c, ERR_DUP_MESSAGE, <int64_t> number, 0)
            node_retract(n)  # the last value of a singular field wins
        seen[index >> 6] |= 1ULL << (index & 63)
        if put_value(vm, c, field, n, field[F_NODE], depth) < 0:
            return -1
    for i in range(nfields):
        field = fields + i * FIELD_WORDS
        n = &vm.nodes[field[F_NODE]]
        if field[F_FLAGS] & FLAG_REPEATED:
            if stored(vm, c, node_close_list(n, &vm.nodes[field[F_ELEM]], 1)) < 0:
                return -1
        elif not seen[i >> 6] & (1ULL << (i & 63)):
            if stored(vm, c, node_absent(vm.nodes, field[F_NODE])) < 0:
                return -1
    return 0


def decode(raw, BatchLayout layout, Plan plan, dict known_ids, bint framed, int32_t max_depth):
    """Decode a binary array of Protobuf messages into the layout's root node.

    With `framed`, each record is in Confluent's wire format and its schema id must be a key of
    `known_ids` mapped to True. Returns (array, None) or (None, (row, code, a, b, byte position))
    for the first undecodable record; the batch's builders are then dropped."""
    cdef Records records = records_of(raw)
    cdef ColumnSet columns = ColumnSet(layout, records.n)
    cdef int32_t count = len(known_ids), k = 0
    cdef int64_t *ids = <int64_t *> malloc(max(count, 1) * sizeof(int64_t))
    cdef Vm vm
    cdef Cursor c
    cdef int64_t i, j, sid, bad = -1, last_ok = -2
    cdef uint64_t indexes, raw_index
    if ids == NULL:
        raise MemoryError()
    for schema_id, ok in known_ids.items():
        ids[k] = schema_id if ok else -2
        k += 1
    memset(&vm, 0, sizeof(Vm))
    vm.nodes = columns.nodes
    vm.plan = plan.words
    vm.max_depth = max_depth
    try:
        with nogil:
            for i in range(records.n):
                if not record_at(&records, i, &c):
                    if node_absent(vm.nodes, 0) != 0:
                        vm.f.code = ERR_NOMEM
                        bad = i
                        break
                    continue
                if framed:
                    if read_header(&vm.f, &c, &sid) < 0:
                        bad = i
                        break
                    if sid != last_ok:
                        for k in range(count):
                            if ids[k] == sid:
                                last_ok = sid
                                break
                        if sid != last_ok:
                            fault(&vm.f, &c, ERR_SCHEMA, sid, 0)
                            bad = i
                            break
                    # The message indexes: a zigzag varint count, then that many zigzag varints
                    # (a count of 0 stands for [0], the file's first message).
                    if read_varint(&vm.f, &c, &indexes) < 0:
                        bad = i
                        break
                    indexes = (indexes >> 1) ^ (0 - (indexes & 1))
                    if <int64_t> indexes < 0 or <int64_t> indexes > c.end - c.p:
                        fault(&vm.f, &c, ERR_INDEXES, <int64_t> indexes, 0)
                        bad = i
                        break
                    for j in range(<int64_t> indexes):
                        if read_varint(&vm.f, &c, &raw_index) < 0:
                            bad = i
                            break
                        if raw_index & 1:
                            fault(&vm.f, &c, ERR_INDEXES, <int64_t> indexes, 0)
                            bad = i
                            break
                    if bad >= 0:
                        break
                if decode_message(&vm, &c, 0, 1) < 0:
                    bad = i
                    break
    finally:
        free(ids)
    if bad >= 0:
        return None, (bad, vm.f.code, vm.f.a, vm.f.b,
                      vm.f.at - (records.data + records.offsets[bad]) if vm.f.at != NULL else 0)
    return columns.finish(0), None
