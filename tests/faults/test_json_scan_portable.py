"""The JSON record check has an SSE2 path and a portable one (for other CPUs); both must give the same
verdict and position on every record. Compiled here twice with the C compiler, run over a corpus of
adversarial and random records (skipped without a compiler)."""
from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

HEADER_DIR = Path(__file__).resolve().parents[2] / "fastsource" / "includes"

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json_scan.h"

int main(void) {
    uint32_t length;
    while (fread(&length, 4, 1, stdin) == 1) {
        uint8_t *record = malloc(length + FS_BLOCK);
        if (fread(record, 1, length, stdin) != length) return 2;
        memset(record + length, 'x', FS_BLOCK);
        int64_t where = -1;
        int code = fs_scan_json_record(record, length, 8, &where);
        printf("%d %lld\n", code, (long long)where);
        fwrite(record, 1, length, stdout);
        printf("\n");
        free(record);
    }
    return 0;
}
"""


def corpus() -> list[bytes]:
    rng = random.Random(20261126)
    pieces = [b"{", b"}", b"[", b"]", b'"', b"\\", b"\\n", b"\\u00e9", b":", b",", b" ", b"\n", b"\r", b"\t",
              b"1", b"null", b"\xff", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80",
              b"\xc0\x80", b"\x00", b"a" * 40]
    records = [b"", b"null", b" null ", b"{}", b'{"a": 1}', b"[1]", b'{"a": "' + b"x" * 100 + b'"}']
    for _ in range(3000):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 60)))
        records.append(body if rng.random() < 0.3 else b"{" + body + b"}")
    for depth in range(1, 12):
        records.append(b'{"k":' + b"[" * depth + b"]" * depth + b"}")
    return records


@pytest.mark.timeout(120)
def test_the_portable_check_agrees_with_the_sse2_one(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    source = tmp_path / "scan.c"
    source.write_text(PROGRAM)
    stdin = b"".join(struct.pack("<I", len(r)) + r for r in corpus())
    outputs = []
    for flags in ([], ["-DFS_JSON_SCALAR"]):
        binary = tmp_path / f"scan{len(outputs)}"
        subprocess.run([compiler, "-O2", "-std=gnu11", *flags, f"-I{HEADER_DIR}", str(source), "-o", str(binary)],
                       check=True, timeout=60)
        outputs.append(subprocess.run([str(binary)], input=stdin, capture_output=True, check=True,
                                      timeout=60).stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].count(b"\n") >= 2 * len(corpus())
