# The JSON pre-scan (_json.pyx): the record check it runs, declared in includes/json_scan.pxd, and the
# builders' buffer hand-over it gives its output to Arrow with.
from libc.stdint cimport int32_t, int64_t, uint8_t, uintptr_t

from fastsource.formats._builders cimport adopt_buffer
from fastsource.includes.json_scan cimport FS_BLOCK, FS_JSON_NULL, FS_JSON_OBJECT, fs_scan_json_record
