# cython: language_level=3, boundscheck=False, wraparound=False
"""The Arrow column builders of every compiled unit (the Kafka consumer and the decoders): a
`ColumnSet` holds one batch's buffers, one node per node of the output type (a layout made once in
Python), and turns them into Arrow arrays without copying. A failed batch is simply dropped: its
ColumnSet frees what it holds; a record that failed part-way is dropped with `node_truncate`."""
from libc.stdint cimport int32_t, int64_t, uintptr_t
from libc.stdlib cimport calloc, free

import pyarrow as pa

# A layout entry: (kind, width, nullable, children, arrow type, dictionary or None, null child).
LAYOUT_FIELDS = ("kind", "width", "nullable", "children", "type", "dictionary", "null_child")


cdef class _Allocation:
    """Owns one malloc'ed block that an Arrow buffer points into; frees it when Arrow lets go."""
    cdef void *ptr

    def __dealloc__(self):
        free(self.ptr)


cdef object adopt_buffer(void *ptr, int64_t size):
    """A pyarrow.Buffer over `size` bytes of the malloc'ed block `ptr` (no copy), which it now owns:
    freed when Arrow lets go, or at once if the buffer cannot be made."""
    cdef _Allocation owner = _Allocation.__new__(_Allocation)
    owner.ptr = ptr
    return pa.foreign_buffer(<uintptr_t> ptr, size, base=owner)


cdef object buf_take(Buf *b):
    """The block as a pyarrow.Buffer (no copy); `b` is left empty, whether or not that succeeds."""
    cdef void *data = b.data
    cdef int64_t size = b.size
    b.data = NULL
    b.size = 0
    b.cap = 0
    if data == NULL:
        return pa.py_buffer(b"")
    return adopt_buffer(data, size)


cdef class ColumnSet:
    def __cinit__(self, list layout):
        cdef int32_t i, j
        cdef Node *n
        self.layout = layout
        self.count = len(layout)
        self.nodes = <Node *> calloc(max(self.count, 1), sizeof(Node))
        if self.nodes == NULL:
            raise MemoryError()
        for i in range(self.count):
            kind, width, nullable, children, _, _, null_child = layout[i]
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
            if kind == NODE_BINARY or kind == NODE_LIST:
                if buf_reserve(&n.offsets, 4) < 0:
                    raise MemoryError()
                (<int32_t *> n.offsets.data)[0] = 0
                n.offsets.size = 4

    def __dealloc__(self):
        cdef int32_t i
        if self.nodes == NULL:
            return
        for i in range(self.count):
            free(self.nodes[i].children)
            buf_free(&self.nodes[i].validity)
            buf_free(&self.nodes[i].data)
            buf_free(&self.nodes[i].offsets)
        free(self.nodes)
        self.nodes = NULL

    def finish(self, int32_t root=0):
        """The node `root` and its descendants as one Arrow array; the buffers move into Arrow."""
        cdef Node *n = &self.nodes[root]
        kind, _, _, children, arrow_type, dictionary, _ = self.layout[root]
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
