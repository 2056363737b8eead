"""The peers chart: parsed from the Markdown tables the benchmark writes, drawn as a valid SVG or PNG
with one bar per reader that has figures."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from fastsource.benchmark.chart import PeerFigures, main, parse_peers_tables, write_chart

TABLES = """## Peers: 1,000 records per case

### 100b

| reader | records/s, whole process | records/s, from first record | whole process, s | first record to end, s | peak RSS MB, process tree | peak PSS MB, process tree | time ÷ time of fastsource, 1 reader (whole / from first) |
|---|---:|---:|---:|---:|---:|---:|---:|
| fastsource, 1 reader | 1,642,802 | 1,991,570 | 3.04 | 2.51 | 153 | 120 | 1.00x / 1.00x |
| Flink KafkaSource, byte[] values, parallelism 1 | 634,521 | 1,369,637 | 7.88 | 3.65 | 770 | 758 | 2.67x / 1.50x |
| aiokafka + pyarrow | unavailable: aiokafka is not installed | | | | | | |

Every round: ...

### json

| reader | records/s, whole process | records/s, from first record | whole process, s | first record to end, s | peak RSS MB, process tree | peak PSS MB, process tree | time ÷ time of fastsource Json(schema), 1 reader (whole / from first) |
|---|---:|---:|---:|---:|---:|---:|---:|
| fastsource Json(schema), 1 reader | 1,094,596 | 1,281,225 | 4.57 | 3.90 | 318 | 285 | 1.00x / 1.00x |

### 100b

| reader | records/s, whole process | records/s, from first record | whole process, s | first record to end, s | peak RSS MB, process tree | peak PSS MB, process tree | x |
|---|---:|---:|---:|---:|---:|---:|---:|
| fastsource, 1 reader | 1 | 1 | 1 | 1 | 1 | 1 | 1 |
"""


def test_parse_takes_the_first_table_of_each_case_and_skips_unavailable_readers():
    cases = parse_peers_tables(TABLES)
    assert list(cases) == ["100b", "json"]
    assert cases["100b"] == [PeerFigures("fastsource, 1 reader", 1642802, 1991570, 153),
                             PeerFigures("Flink KafkaSource, byte[] values, parallelism 1", 634521, 1369637, 770)]
    assert cases["json"][0].peak_rss_mb == 318


def test_svg_chart_is_valid_xml_with_a_label_per_reader(tmp_path):
    path = write_chart(parse_peers_tables(TABLES), tmp_path / "peers.svg", "1,000 records")
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    text = path.read_text()
    for reader in ("fastsource, 1 reader", "Flink KafkaSource, byte[] values, parallelism 1",
                   "fastsource Json(schema), 1 reader", "1,000 records"):
        assert reader in text
    assert "aiokafka" not in text


def test_png_chart_from_the_command_line(tmp_path):
    (tmp_path / "peers.md").write_text(TABLES)
    main([str(tmp_path / "peers.md"), str(tmp_path / "peers.png")])
    assert (tmp_path / "peers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_figures_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no peers figures"):
        write_chart(parse_peers_tables("# nothing here\n"), tmp_path / "x.svg")
