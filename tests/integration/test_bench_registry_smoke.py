"""A small run of the Schema Registry benchmark (`fastsource bench --registry`), so that it keeps
working: every reader reads every record (figures are not checked; bench/RESULTS.md holds measured ones)."""
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).parent / "fastsource")


def test_registry_benchmark_quick_run_reads_every_record(bootstrap, schema_registry, tmp_path):
    tables = tmp_path / "registry.md"
    result = subprocess.run([CLI, "bench", "--registry", "--bootstrap", bootstrap, "--schema-registry",
                             schema_registry, "--records", "3000", "--cases", "avro-wide,protobuf-6",
                             "--no-flink", "--markdown", str(tables)],
                            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    text = tables.read_text()
    assert "### avro-wide" in text and "### protobuf-6" in text
    assert "unavailable" not in text and "FAILED" not in result.stdout
    for reader in ("fastsource Avro(schema_registry), 1 reader is", "fastsource Protobuf(message, "
                   "schema_registry), 1 reader is", "confluent-kafka ProtobufDeserializer"):
        assert reader in text
