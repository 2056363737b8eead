# cython: language_level=3, boundscheck=False, wraparound=False
"""The Arrow column builders of every compiled unit (the Kafka consumer and the decoders): a
`ColumnSet` holds one batch's buffers, one node per node of the output type (a `BatchLayout` made
once in Python), and turns them into Arrow arrays without copying. A failed batch is simply dropped:
its ColumnSet frees what it holds; a record that failed part-way is dropped with `node_truncate`.

Buffers are reserved when a batch starts at the sizes the layout's last batch needed per row, from a
small pool of blocks that Arrow has let go of: a batch of tens of megabytes then neither copies its
buffers as they grow nor touches fresh pages (the kernel zeroing them cost a fifth of a wide
record's decoding). The pool is touched only with the GIL held: when a ColumnSet starts and when
Arrow releases a buffer."""
from libc.stdint cimport int32_t, int64_t, uintptr_t
from libc.stdlib cimport calloc, free

from fastsource.includes.asan_poison cimport fs_poison, fs_unpoison

import array as pyarray

import pyarrow as pa

# A layout entry: (kind, width, nullable, children, arrow type, dictionary or None, null child).
LAYOUT_FIELDS = ("kind", "width", "nullable", "children", "type", "dictionary", "null_child")

# The block pool: blocks of at least POOL_MIN_BLOCK bytes (a page; smaller ones are left to malloc),
# at most POOL_BLOCKS of them and POOL_MAX_BYTES in all; a block released when the pool is full is
# freed. A block serves a request of up to POOL_SLACK times less than its size.
cdef enum:
    POOL_BLOCKS = 256
    POOL_MIN_BLOCK = 1 << 12
    POOL_MAX_BYTES = 64 << 20
    POOL_SLACK = 4

POOL_LIMITS = {"blocks": POOL_BLOCKS, "bytes": POOL_MAX_BYTES, "min_block": POOL_MIN_BLOCK}

cdef void *pool_ptr[POOL_BLOCKS]
cdef int64_t pool_cap[POOL_BLOCKS]
cdef int pool_count = 0
cdef int64_t pool_bytes = 0


cdef void pool_give(void *ptr, int64_t cap) noexcept:
    """Keep a block Arrow let go of for a later batch, or free it (GIL held)."""
    global pool_count, pool_bytes
    if cap < POOL_MIN_BLOCK or pool_count == POOL_BLOCKS or pool_bytes + cap > POOL_MAX_BYTES:
        free(ptr)
        return
    fs_poison(ptr, cap)
    pool_ptr[pool_count] = ptr
    pool_cap[pool_count] = cap
    pool_count += 1
    pool_bytes += cap


cdef int buf_start(Buf *b, int64_t need) noexcept:
    """Give an empty buffer at least `need` bytes: the smallest pooled block that fits without
    wasting more than POOL_SLACK times `need`, else a new one (GIL held)."""
    global pool_count, pool_bytes
    cdef int i, best = -1
    if need < POOL_MIN_BLOCK:
        return buf_reserve(b, need)
    for i in range(pool_count):
        if need <= pool_cap[i] <= need * POOL_SLACK and (best < 0 or pool_cap[i] < pool_cap[best]):
            best = i
    if best < 0:
        return buf_reserve(b, need)
    fs_unpoison(pool_ptr[best], pool_cap[best])
    b.data = <char *> pool_ptr[best]
    b.cap = pool_cap[best]
    b.size = 0
    pool_bytes -= pool_cap[best]
    pool_count -= 1
    pool_ptr[best] = pool_ptr[pool_count]
    pool_cap[best] = pool_cap[pool_count]
    return 0


def release_pool() -> None:
    """Free every pooled block (when a consumer closes: the memory goes back at the end of a read)."""
    global pool_count, pool_bytes
    while pool_count:
        pool_count -= 1
        fs_unpoison(pool_ptr[pool_count], pool_cap[pool_count])
        free(pool_ptr[pool_count])
    pool_bytes = 0


def pool_stats() -> tuple[int, int]:
    """(blocks, bytes) held by the pool."""
    return pool_count, pool_bytes


cdef class _Allocation:
    """Owns one malloc'ed block that an Arrow buffer points into; gives it to the pool (or frees it)
    when Arrow lets go."""
    cdef void *ptr
    cdef int64_t cap

    def __dealloc__(self):
        pool_give(self.ptr, self.cap)


cdef object adopt_buffer(void *ptr, int64_t size, int64_t cap=0):
    """A pyarrow.Buffer over `size` bytes of the malloc'ed block `ptr` of `cap` bytes (no copy),
    which it now owns: pooled or freed when Arrow lets go, or at once if the buffer cannot be made."""
    cdef _Allocation owner = _Allocation.__new__(_Allocation)
    owner.ptr = ptr
    owner.cap = cap
    return pa.foreign_buffer(<uintptr_t> ptr, size, base=owner)


cdef object buf_take(Buf *b):
    """The block as a pyarrow.Buffer (no copy); `b` is left empty, whether or not that succeeds."""
    cdef void *data = b.data
    cdef int64_t size = b.size
    cdef int64_t cap = b.cap
    b.data = NULL
    b.size = 0
    b.cap = 0
    if data == NULL:
        return pa.py_buffer(b"")
    return adopt_buffer(data, size, cap)


def string_array(values) -> pa.Array:
    """A pyarrow string array of Python strings, built from its buffers: `pa.array(list)` imports
    pandas when it is installed (~0.5 s), which a read's start-up must not pay."""
    encoded = [v.encode() for v in values]
    offsets = [0]
    total = 0
    for item in encoded:
        total += len(item)
        offsets.append(total)
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(pyarray.array("i", offsets).tobytes()),
                                  pa.py_buffer(b"".join(encoded))])


cdef class BatchLayout:
    def __cinit__(self, list nodes):
        self.nodes = nodes
        self.count = len(nodes)
        self.per_row = <double *> calloc(max(self.count, 1) * 3, sizeof(double))
        if self.per_row == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.per_row)

    def __len__(self) -> int:
        return self.count

    def __reduce__(self):
        return BatchLayout, (self.nodes,)  # the sizes are this process's; another starts afresh


cdef class ColumnSet:
    def __cinit__(self, BatchLayout layout, int64_t rows=0):
        cdef int32_t i, j
        cdef Node *n
        self.layout = layout
        self.count = layout.count
        self.nodes = <Node *> calloc(max(self.count, 1), sizeof(Node))
        if self.nodes == NULL:
            raise MemoryError()
        for i in range(self.count):
            kind, width, nullable, children, _, _, null_child = layout.nodes[i]
            n = &self.nodes[i]
            n.kind = kind
            n.width = width
            n.nullable = nullable
            n.null_child = null_child
            n.nchildren = len(children)
            if n.nchildren:
                n.children = <int32_t *> calloc(n.nchildren, sizeof(int32_t))
                if n.children == NULL:
                    raise MemoryError()
                for j in range(n.nchildren):
                    n.children[j] = children[j]
            if rows > 0 and (buf_start(&n.validity, self._expected(i, 0, rows)) < 0
                             or buf_start(&n.data, self._expected(i, 1, rows)) < 0
                             or buf_start(&n.offsets, self._expected(i, 2, rows)) < 0):
                raise MemoryError()
            if kind == NODE_BINARY or kind == NODE_LIST:
                if buf_reserve(&n.offsets, 4) < 0:
                    raise MemoryError()
                (<int32_t *> n.offsets.data)[0] = 0
                n.offsets.size = 4

    cdef int64_t _expected(self, int32_t node, int which, int64_t rows):
        """Bytes a buffer will likely need for `rows` rows: the last batch's per row, plus an eighth."""
        cdef double per_row = self.layout.per_row[node * 3 + which]
        return <int64_t> (per_row * rows * 1.125) + 64 if per_row > 0 else 0

    def __dealloc__(self):
        """Buffers not handed to Arrow (a failed batch, a validity bitmap never needed) go to the pool."""
        cdef int32_t i
        cdef Node *n
        if self.nodes == NULL:
            return
        for i in range(self.count):
            n = &self.nodes[i]
            free(n.children)
            pool_give(n.validity.data, n.validity.cap)
            pool_give(n.data.data, n.data.cap)
            pool_give(n.offsets.data, n.offsets.cap)
        free(self.nodes)
        self.nodes = NULL

    cdef void note_sizes(self):
        """Note what each node's buffers hold per row (of node 0) for the layout's next batch; once,
        before the first buffer moves into Arrow (`finish` calls it if the caller has not)."""
        cdef Node *n
        cdef double *per_row
        cdef int64_t rows = self.nodes[0].length if self.count else 0
        cdef int32_t i
        if self.noted or rows == 0:
            return
        self.noted = 1
        for i in range(self.count):
            n = &self.nodes[i]
            per_row = self.layout.per_row + i * 3
            per_row[0] = <double> n.validity.size / rows
            per_row[1] = <double> n.data.size / rows
            per_row[2] = <double> n.offsets.size / rows

    def finish(self, int32_t root=0):
        """The node `root` and its descendants as one Arrow array; the buffers move into Arrow."""
        cdef Node *n = &self.nodes[root]
        kind, _, _, children, arrow_type, dictionary, _ = self.layout.nodes[root]
        self.note_sizes()
        length = n.length
        nulls = n.nulls
        validity = buf_take(&n.validity) if n.has_validity else None
        if kind == NODE_NULL:
            return pa.nulls(length)
        if dictionary is not None:
            indices = pa.Array.from_buffers(pa.int32(), length, [validity, buf_take(&n.data)],
                                            null_count=nulls)
            return pa.DictionaryArray.from_arrays(indices, dictionary)
        if kind == NODE_BOOL or kind == NODE_FIXED:
            return pa.Array.from_buffers(arrow_type, length, [validity, buf_take(&n.data)], null_count=nulls)
        if kind == NODE_BINARY:
            return pa.Array.from_buffers(arrow_type, length, [validity, buf_take(&n.offsets), buf_take(&n.data)],
                                         null_count=nulls)
        arrays = [self.finish(child) for child in children]
        if kind == NODE_STRUCT:
            return pa.Array.from_buffers(arrow_type, length, [validity], null_count=nulls, children=arrays)
        if kind == NODE_LIST:
            return pa.Array.from_buffers(arrow_type, length, [validity, buf_take(&n.offsets)], null_count=nulls,
                                         children=arrays)
        return pa.Array.from_buffers(arrow_type, length, [None, buf_take(&n.data), buf_take(&n.offsets)],
                                     children=arrays)
