# cython: language_level=3, boundscheck=False, wraparound=False
"""Column builders of the compiled decoders: a `ColumnSet` holds one batch's buffers, one node per
node of the output type (a layout made once per format in Python), and turns them into one Arrow
array without copying. A failed batch is simply dropped: its ColumnSet frees what it holds."""
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


cdef object buf_take(Buf *b):
    """The block as a pyarrow.Buffer (no copy); `b` is left empty."""
    cdef _Allocation owner
    if b.data == NULL:
        return pa.py_buffer(b"")
    owner = _Allocation.__new__(_Allocation)
    owner.ptr = b.data
    result = pa.foreign_buffer(<uintptr_t> b.data, b.size, base=owner)
    b.data = NULL
    b.size = 0
    b.cap = 0
    return result


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
