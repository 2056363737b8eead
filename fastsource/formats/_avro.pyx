# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled Avro decoder: runs decode plans (fastsource/formats/avro.py makes them, one per
writer schema, resolved against the reader schema) over every record of a batch with the GIL
released, appending into the column builders of _builders.pyx. No Python object per record."""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t, uintptr_t, INT32_MIN, INT32_MAX, INT64_MIN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from fastsource.formats._builders cimport *
from fastsource.formats._wire cimport *

import pyarrow as pa

# Opcodes of a plan (words of int32; `node` -1 reads and discards).
cdef enum:
    OP_NULL = 1          # node
    OP_BOOL = 2          # node
    OP_INT = 3           # node: zigzag varint into int32
    OP_LONG = 4          # node: zigzag varint into int64
    OP_INT_FLOAT = 5     # node: zigzag varint into float32
    OP_INT_DOUBLE = 6    # node: zigzag varint into float64
    OP_FLOAT = 7         # node
    OP_FLOAT_DOUBLE = 8  # node
    OP_DOUBLE = 9        # node
    OP_BYTES = 10        # node
    OP_STRING = 11       # node: bytes checked to be UTF-8
    OP_FIXED = 12        # node size
    OP_DEC_BYTES = 13    # node precision: big-endian two's complement into a decimal of the node's width
    OP_DEC_FIXED = 14    # node size precision
    OP_ENUM = 15         # node count table: `count` words at `table`: reader index, or -1
    OP_RECORD = 16       # node count, then `count` field plans
    OP_ARRAY = 17        # node bodylen, then the item plan
    OP_MAP = 18          # node entries key bodylen, then the value plan
    OP_UNION = 19        # node count end, `count` branch starts, then the branch plans
    OP_SELECT = 20       # node branch, then the plan of the reader union's branch
    OP_DEFAULT = 21      # start size, then the plan that reads the encoded default at consts[start:]
    OP_FAIL = 22         # reason: a writer branch the reader cannot take
    OP_TIME = 23         # node unit: zigzag varint, a time of day (unit 0: ms, 1: us) within one day

OPCODES = {name: value for name, value in (
    ("NULL", OP_NULL), ("BOOL", OP_BOOL), ("INT", OP_INT), ("LONG", OP_LONG), ("INT_FLOAT", OP_INT_FLOAT),
    ("INT_DOUBLE", OP_INT_DOUBLE), ("FLOAT", OP_FLOAT), ("FLOAT_DOUBLE", OP_FLOAT_DOUBLE),
    ("DOUBLE", OP_DOUBLE), ("BYTES", OP_BYTES), ("STRING", OP_STRING), ("FIXED", OP_FIXED),
    ("DEC_BYTES", OP_DEC_BYTES), ("DEC_FIXED", OP_DEC_FIXED), ("ENUM", OP_ENUM), ("RECORD", OP_RECORD),
    ("ARRAY", OP_ARRAY), ("MAP", OP_MAP), ("UNION", OP_UNION), ("SELECT", OP_SELECT),
    ("DEFAULT", OP_DEFAULT), ("FAIL", OP_FAIL), ("TIME", OP_TIME))}

# What was wrong with a record, beyond the shared codes of _wire.pxd.
cdef enum:
    ERR_UNION_INDEX = 32     # a: index, b: branches
    ERR_ENUM_INDEX = 33      # a: index, b: symbols
    ERR_ENUM_SYMBOL = 34     # a: writer symbol index with no reader symbol and no default
    ERR_INT_RANGE = 35       # a: value
    ERR_BOOL = 36            # a: byte
    ERR_DECIMAL_SIZE = 37    # a: size in bytes
    ERR_FAIL = 38            # a: reason index of an OP_FAIL
    ERR_COUNT = 39           # a: block count, b: bytes left
    ERR_TIME_RANGE = 40      # a: value (Arrow's time32/time64 hold 0 <= t < one day)
    ERR_PRECISION = 41       # a: precision (the decimal has more digits than its type allows)
    ERR_EMPTY_ITEMS = 42     # a: block count, b: the limit MAX_EMPTY_ITEMS

ERRORS = {name: value for name, value in (
    ("NOMEM", ERR_NOMEM), ("TOO_LARGE", ERR_TOO_LARGE), ("NOT_WIRE", ERR_NOT_WIRE), ("SCHEMA", ERR_SCHEMA),
    ("TRUNCATED", ERR_TRUNCATED), ("VARINT", ERR_VARINT), ("NEG_LENGTH", ERR_NEG_LENGTH),
    ("LENGTH", ERR_LENGTH), ("UNION_INDEX", ERR_UNION_INDEX), ("ENUM_INDEX", ERR_ENUM_INDEX),
    ("ENUM_SYMBOL", ERR_ENUM_SYMBOL), ("INT_RANGE", ERR_INT_RANGE), ("BOOL", ERR_BOOL), ("UTF8", ERR_UTF8),
    ("DECIMAL_SIZE", ERR_DECIMAL_SIZE), ("TRAILING", ERR_TRAILING), ("FAIL", ERR_FAIL), ("COUNT", ERR_COUNT),
    ("TIME_RANGE", ERR_TIME_RANGE), ("PRECISION", ERR_PRECISION), ("EMPTY_ITEMS", ERR_EMPTY_ITEMS))}

# Items of no bytes at all (nulls, empty records) still cost a slot each (and a reader's defaults may
# fill each one): a record may announce at most this many of them in all its blocks, so that a short
# record cannot ask for unbounded time or memory.
cdef enum:
    MAX_EMPTY_ITEMS = 1 << 16


cdef struct Vm:
    Fault f
    const int32_t *plan
    const uint8_t *consts
    Node *nodes
    int64_t empty_items      # zero-byte items announced so far by the record being decoded


cdef inline int read_long(Vm *vm, Cursor *c, int64_t *out) noexcept nogil:
    cdef uint64_t raw
    if read_varint(&vm.f, c, &raw) < 0:
        return -1
    out[0] = <int64_t> ((raw >> 1) ^ (0 - (raw & 1)))
    return 0


cdef inline int read_length(Vm *vm, Cursor *c, int64_t *out) noexcept nogil:
    """A length of bytes that must follow in the record (an error points at the length)."""
    cdef const uint8_t *start = c.p
    cdef int64_t left
    if read_long(vm, c, out) < 0:
        return -1
    left = c.end - c.p
    if out[0] < 0 or out[0] > left:
        c.p = start
        return fault(&vm.f, c, ERR_NEG_LENGTH if out[0] < 0 else ERR_LENGTH, out[0], left)
    return 0


cdef inline int stored(Vm *vm, Cursor *c, int rc) noexcept nogil:
    """A builder's result as the VM's."""
    if rc == 0:
        return 0
    return fault(&vm.f, c, rc if rc > 0 else ERR_NOMEM, 0, 0)


# 10**p as 32-byte little-endian integers, p = 0..76: the bounds of decimal128/256 values by precision.
cdef uint8_t POW10[77][32]
for _p in range(77):
    for _i, _b in enumerate((10 ** _p).to_bytes(32, "little")):
        POW10[_p][_i] = _b


cdef int put_decimal(Vm *vm, Cursor *c, Node *n, const uint8_t *p, int64_t size, int32_t precision) noexcept nogil:
    """Big-endian two's complement of `size` bytes into a little-endian decimal of n.width bytes,
    whose magnitude must be below 10**precision (Arrow's decimals hold no more digits)."""
    cdef uint8_t value[32]
    cdef uint8_t magnitude[32]
    cdef int64_t i
    cdef int carry
    cdef bint negative = size > 0 and p[0] & 0x80
    if size > n.width:
        return fault(&vm.f, c, ERR_DECIMAL_SIZE, size, 0)
    memset(value, 0xFF if negative else 0, n.width)
    for i in range(size):
        value[i] = p[size - 1 - i]
    memset(magnitude, 0, 32)
    carry = 1
    for i in range(n.width):  # |value|: the two's complement negated when negative
        if negative:
            carry += <uint8_t> ~value[i]
            magnitude[i] = <uint8_t> carry
            carry >>= 8
        else:
            magnitude[i] = value[i]
    for i in range(31, -1, -1):
        if magnitude[i] != POW10[precision][i]:
            if magnitude[i] > POW10[precision][i]:
                return fault(&vm.f, c, ERR_PRECISION, precision, 0)
            break
    else:
        return fault(&vm.f, c, ERR_PRECISION, precision, 0)  # equal to 10**precision
    return stored(vm, c, node_put_fixed(n, value))


cdef int64_t block_count(Vm *vm, Cursor *c, int64_t *count, int64_t min_item) noexcept nogil:
    """The next block's item count of an array or map (0 at the end)."""
    cdef int64_t size
    if read_long(vm, c, count) < 0:
        return -1
    if count[0] < 0:
        if count[0] == INT64_MIN:
            return fault(&vm.f, c, ERR_COUNT, count[0], c.end - c.p)
        count[0] = -count[0]
        if read_long(vm, c, &size) < 0:
            return -1
    if min_item > 0 and count[0] > (c.end - c.p) // min_item:
        return fault(&vm.f, c, ERR_COUNT, count[0], c.end - c.p)
    if min_item == 0:
        if count[0] > MAX_EMPTY_ITEMS - vm.empty_items:
            return fault(&vm.f, c, ERR_EMPTY_ITEMS, count[0], MAX_EMPTY_ITEMS)
        vm.empty_items += count[0]
    return 0



cdef int32_t run(Vm *vm, int32_t pc, int64_t todo, Cursor *c) noexcept nogil:
    """Run `todo` plans one after another from `pc` over the cursor; the pc after them, or -1 (the
    vm says why). A record's fields follow it in the plan, so a record only adds to `todo`; arrays,
    maps, unions and defaults run their parts by recursion."""
    cdef const int32_t *w
    cdef int32_t op, node, at, k
    cdef Node *n
    cdef int64_t v, count, i, size
    cdef const uint8_t *p
    cdef float f
    cdef double d
    cdef Cursor inner
    while todo > 0:
        todo -= 1
        w = vm.plan + pc
        op = w[0]
        node = w[1]
        n = &vm.nodes[node] if node >= 0 else NULL
        if op == OP_LONG:
            if read_long(vm, c, &v) < 0:
                return -1
            if n != NULL and node_put_i64(n, v) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 2
        elif op == OP_STRING:
            if read_length(vm, c, &size) < 0:
                return -1
            p = c.p
            c.p += size
            if n != NULL:
                if not utf8_valid(p, size):
                    c.p = p
                    return fault(&vm.f, c, ERR_UTF8, 0, 0)
                if stored(vm, c, node_put_bytes(n, p, size)) < 0:
                    return -1
            pc += 2
        elif op == OP_BYTES:
            if read_length(vm, c, &size) < 0:
                return -1
            p = c.p
            c.p += size
            if n != NULL and stored(vm, c, node_put_bytes(n, p, size)) < 0:
                return -1
            pc += 2
        elif op == OP_DOUBLE:
            if take(&vm.f, c, 8, &p) < 0:
                return -1
            memcpy(&d, p, 8)
            if n != NULL and node_put_f64(n, d) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 2
        elif op == OP_FLOAT:
            if take(&vm.f, c, 4, &p) < 0:
                return -1
            memcpy(&f, p, 4)
            if n != NULL and node_put_f32(n, f) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 2
        elif op == OP_FLOAT_DOUBLE:
            if take(&vm.f, c, 4, &p) < 0:
                return -1
            memcpy(&f, p, 4)
            if n != NULL and node_put_f64(n, f) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 2
        elif op == OP_INT:
            if read_long(vm, c, &v) < 0:
                return -1
            if v < INT32_MIN or v > INT32_MAX:
                return fault(&vm.f, c, ERR_INT_RANGE, v, 0)
            if n != NULL and node_put_i32(n, <int32_t> v) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 2
        elif op == OP_INT_FLOAT:
            if read_long(vm, c, &v) < 0:
                return -1
            if n != NULL and node_put_f32(n, <float> v) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 2
        elif op == OP_INT_DOUBLE:
            if read_long(vm, c, &v) < 0:
                return -1
            if n != NULL and node_put_f64(n, <double> v) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 2
        elif op == OP_TIME:
            p = c.p
            if read_long(vm, c, &v) < 0:
                return -1
            if v < 0 or v >= (<int64_t> 86400000000 if w[2] else <int64_t> 86400000):
                c.p = p  # the error points at the value
                return fault(&vm.f, c, ERR_TIME_RANGE, v, 0)
            if n != NULL:
                if (node_put_i32(n, <int32_t> v) if n.width == 4 else node_put_i64(n, v)) < 0:
                    return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 3
        elif op == OP_BOOL:
            if take(&vm.f, c, 1, &p) < 0:
                return -1
            if p[0] > 1:
                c.p = p
                return fault(&vm.f, c, ERR_BOOL, p[0], 0)
            if n != NULL and node_put_bool(n, p[0]) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 2
        elif op == OP_NULL:
            if n != NULL and stored(vm, c, node_absent(vm.nodes, node)) < 0:
                return -1
            pc += 2
        elif op == OP_RECORD:
            if n != NULL and node_mark(n, 1) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            todo += w[2]
            pc += 3
        elif op == OP_UNION:
            # node count end, then `count` branch starts
            if read_long(vm, c, &v) < 0:
                return -1
            if v < 0 or v >= w[2]:
                return fault(&vm.f, c, ERR_UNION_INDEX, v, w[2])
            if run(vm, w[4 + v], 1, c) < 0:
                return -1
            pc = w[3]
        elif op == OP_SELECT:
            if stored(vm, c, node_put_union(n, w[2], &vm.nodes[n.children[w[2]]])) < 0:
                return -1
            pc += 3
            todo += 1
        elif op == OP_ENUM:
            if read_long(vm, c, &v) < 0:
                return -1
            if v < 0 or v >= w[2]:
                return fault(&vm.f, c, ERR_ENUM_INDEX, v, w[2])
            k = vm.plan[w[3] + v]
            if k < 0:
                return fault(&vm.f, c, ERR_ENUM_SYMBOL, v, 0)
            if n != NULL and node_put_i32(n, k) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 4
        elif op == OP_FIXED:
            if take(&vm.f, c, w[2], &p) < 0:
                return -1
            if n != NULL and node_put_fixed(n, p) < 0:
                return fault(&vm.f, c, ERR_NOMEM, 0, 0)
            pc += 3
        elif op == OP_DEC_FIXED:
            if take(&vm.f, c, w[2], &p) < 0:
                return -1
            if n != NULL and put_decimal(vm, c, n, p, w[2], w[3]) < 0:
                return -1
            pc += 4
        elif op == OP_DEC_BYTES:
            if read_length(vm, c, &size) < 0:
                return -1
            p = c.p
            c.p += size
            if n != NULL and put_decimal(vm, c, n, p, size, w[2]) < 0:
                return -1
            pc += 3
        elif op == OP_ARRAY:
            # node fewest bodylen, then the item plan
            while True:
                if block_count(vm, c, &count, w[2]) < 0:
                    return -1
                if count == 0:
                    break
                for i in range(count):
                    if run(vm, pc + 4, 1, c) < 0:
                        return -1
            if n != NULL and stored(vm, c, node_close_list(n, &vm.nodes[n.children[0]], 1)) < 0:
                return -1
            pc += 4 + w[3]
        elif op == OP_MAP:
            # node fewest bodylen entries key, then the value plan
            while True:
                if block_count(vm, c, &count, w[2]) < 0:
                    return -1
                if count == 0:
                    break
                for i in range(count):
                    if read_length(vm, c, &size) < 0:
                        return -1
                    p = c.p
                    c.p += size
                    if n != NULL:
                        if not utf8_valid(p, size):
                            c.p = p
                            return fault(&vm.f, c, ERR_UTF8, 0, 0)
                        if node_mark(&vm.nodes[w[4]], 1) < 0:
                            return fault(&vm.f, c, ERR_NOMEM, 0, 0)
                        if stored(vm, c, node_put_bytes(&vm.nodes[w[5]], p, size)) < 0:
                            return -1
                    if run(vm, pc + 6, 1, c) < 0:
                        return -1
            if n != NULL and stored(vm, c, node_close_list(n, &vm.nodes[n.children[0]], 1)) < 0:
                return -1
            pc += 6 + w[3]
        elif op == OP_DEFAULT:
            inner.p = vm.consts + w[1]
            inner.end = inner.p + w[2]
            pc = run(vm, pc + 3, 1, &inner)
            if pc < 0:
                return -1
            if inner.p != inner.end:
                return fault(&vm.f, c, ERR_TRAILING, inner.end - inner.p, 0)
        elif op == OP_FAIL:
            return fault(&vm.f, c, ERR_FAIL, w[1], 0)
        else:
            return fault(&vm.f, c, ERR_FAIL, -1, 0)
    return pc


cdef struct Entry:
    int64_t schema_id
    const int32_t *plan
    const uint8_t *consts


def decode(raw, BatchLayout layout, dict plans, bint framed):
    """Decode a binary array of Avro records into the layout's root node.

    `plans` maps schema id (or 0 when not `framed`) to a Plan, or to None when the id has no plan.
    Returns (array, None) or (None, (row, code, a, b, byte position)) for the first undecodable
    record; the batch's builders are then dropped."""
    cdef Records records = records_of(raw)
    cdef ColumnSet columns = ColumnSet(layout, records.n)
    cdef int32_t count = len(plans), k = 0, found
    cdef Entry *entries = <Entry *> malloc(max(count, 1) * sizeof(Entry))
    cdef Plan plan
    cdef Vm vm
    cdef Cursor c
    cdef int64_t i, sid, bad = -1
    cdef int64_t last_id = -2
    cdef Entry *current = NULL
    if entries == NULL:
        raise MemoryError()
    keep = []
    for schema_id, value in plans.items():
        entries[k].schema_id = schema_id
        if value is None:
            entries[k].plan = NULL
        else:
            plan = value
            keep.append(plan)
            entries[k].plan = plan.words
            entries[k].consts = <const uint8_t *> plan.consts
        k += 1
    memset(&vm, 0, sizeof(Vm))
    vm.nodes = columns.nodes
    try:
        with nogil:
            for i in range(records.n):
                if not record_at(&records, i, &c):
                    if node_absent(vm.nodes, 0) != 0:
                        vm.f.code = ERR_NOMEM
                        bad = i
                        break
                    continue
                sid = 0
                if framed and read_header(&vm.f, &c, &sid) < 0:
                    bad = i
                    break
                if sid != last_id:
                    current = NULL
                    for k in range(count):
                        if entries[k].schema_id == sid:
                            current = &entries[k]
                            break
                    last_id = sid
                if current == NULL or current.plan == NULL:
                    vm.f.code = ERR_SCHEMA
                    vm.f.a = sid
                    vm.f.at = c.p
                    last_id = -2
                    bad = i
                    break
                vm.plan = current.plan
                vm.consts = current.consts
                vm.empty_items = 0
                if run(&vm, 0, 1, &c) < 0:
                    bad = i
                    break
                if c.p != c.end:
                    vm.f.code = ERR_TRAILING
                    vm.f.a = c.end - c.p
                    vm.f.at = c.p
                    bad = i
                    break
    finally:
        free(entries)
    if bad >= 0:
        return None, (bad, vm.f.code, vm.f.a, vm.f.b,
                      vm.f.at - (records.data + records.offsets[bad]) if vm.f.at != NULL else 0)
    return columns.finish(0), None
