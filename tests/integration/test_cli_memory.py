"""`fastsource read -o file.parquet` stays within the memory bound docs/cli.md states (400 MB), whatever
the topic size, with the command's defaults: 2 M decoded JSON records peaked at 490-630 MB before the
CLI bounded librdkafka's prefetch queue and its readers (issue 18 item 12)."""
from __future__ import annotations

import pytest

from fastsource.benchmark.suite import cli_rss

CLI_BOUND_MB = 400


@pytest.mark.one_kafka_version
def test_a_cli_read_of_two_million_json_records_to_parquet_peaks_under_the_stated_bound(bootstrap, tmp_path):
    results = cli_rss(bootstrap, [2_000_000], tmp_path, kinds=("json",))
    peak = results[("json", 2_000_000)]["peak_rss_mb"]
    assert peak < CLI_BOUND_MB, f"peak RSS {peak:.0f} MB, above the {CLI_BOUND_MB} MB docs/cli.md states"
