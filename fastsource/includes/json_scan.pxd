# C declarations of the JSON record check (json_scan.h), callable without the GIL.
from libc.stdint cimport int64_t, uint8_t

cdef extern from "json_scan.h" nogil:
    enum:
        FS_JSON_OBJECT
        FS_JSON_NULL
        FS_BLOCK
    int fs_scan_json_record(uint8_t *p, int64_t length, int64_t max_depth, int64_t *where)
