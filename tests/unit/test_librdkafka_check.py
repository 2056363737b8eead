"""At import, the librdkafka loaded must be one the compiled consumer was built for (its ABI, its
major version, and at least the version of the declarations it was compiled with); otherwise the
import fails naming both."""
from __future__ import annotations

import pytest

from fastsource._librdkafka import check_librdkafka, soname_abi, version_text
from fastsource.kafka import _consumer

BUILT = 0x020300FF  # 2.3.0
LIB = "/site-packages/confluent_kafka.libs/librdkafka-0cb94173.so.1"


def test_the_loaded_library_passes_the_check_of_the_running_process():
    check_librdkafka(_consumer.librdkafka_version_number(), LIB, _consumer.BUILT_RDKAFKA_VERSION,
                     _consumer.BUILT_RDKAFKA_ABI)
    assert version_text(_consumer.librdkafka_version_number()) == _consumer.librdkafka_version()


@pytest.mark.parametrize("loaded", [0x020300FF, 0x020301FF, 0x021000FF])
def test_the_same_abi_at_or_past_the_built_version_is_accepted(loaded):
    check_librdkafka(loaded, LIB, BUILT, 1)


@pytest.mark.parametrize("loaded,path,problem", [
    (0x020200FF, LIB, "it is older than 2.3.0"),
    (0x02030001, LIB, "it is older than 2.3.0"),
    (0x010900FF, LIB, "its major version is 1, not 2"),
    (0x030000FF, LIB, "its major version is 3, not 2"),
    (0x021000FF, "/lib/librdkafka.so.2", "its ABI is librdkafka.so.2, not librdkafka.so.1"),
])
def test_another_library_is_refused_naming_both(loaded, path, problem):
    with pytest.raises(ImportError) as info:
        check_librdkafka(loaded, path, BUILT, 1)
    message = str(info.value)
    assert "built for librdkafka 2.3.0 (ABI librdkafka.so.1)" in message
    assert f"loaded librdkafka {version_text(loaded)} from {path}" in message
    assert problem in message


def test_abi_and_version_are_read_as_librdkafka_spells_them():
    assert soname_abi(LIB) == 1 and soname_abi("/x/librdkafka.so") is None
    assert version_text(0x021000FF) == "2.16.0" and version_text(0x02030001) == "2.3.0-pre1"
