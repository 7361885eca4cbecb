"""The RocksDB store's memory bounds: from the environment to Faust's store of every table."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairuse.errors import ConfigError
from fairuse.policy import DEFAULT_POLICY
from fairuse.settings import load_settings
from fairuse.stream.app import create_worker


def test_the_worker_gives_every_table_store_the_configured_bounds(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "FAIRUSE_DATA_DIR": str(tmp_path),
            "FAIRUSE_WORKER_STORE": "rocksdb://",
            "FAIRUSE_WORKER_ROCKSDB_BLOCK_CACHE_BYTES": "1048576",
            "FAIRUSE_WORKER_ROCKSDB_WRITE_BUFFER_BYTES": "2097152",
            "FAIRUSE_WORKER_ROCKSDB_WRITE_BUFFERS": "4",
            "FAIRUSE_WORKER_ROCKSDB_MAX_OPEN_FILES": "64",
        }
    )
    worker = create_worker(settings, DEFAULT_POLICY)
    for table in (worker.tenants, worker.positions):
        options = table.data.rocksdb_options
        assert (
            options.block_cache_size,
            options.write_buffer_size,
            options.max_write_buffer_number,
            options.max_open_files,
        ) == (1048576, 2097152, 4, 64)


def test_the_defaults_bound_the_cache_far_below_faust_s(tmp_path: Path) -> None:
    settings = load_settings(
        {"FAIRUSE_DATA_DIR": str(tmp_path), "FAIRUSE_WORKER_STORE": "rocksdb://"}
    )
    options = create_worker(settings, DEFAULT_POLICY).tenants.data.rocksdb_options
    assert options.block_cache_size == 64 * 1024 * 1024  # Faust's own default is 2 GiB
    assert options.write_buffer_size * options.max_write_buffer_number == 32 * 1024 * 1024


@pytest.mark.parametrize("raw", ["lots", "0", "-5"])
def test_a_bad_bound_is_refused_with_the_variable_s_name(raw: str) -> None:
    with pytest.raises(ConfigError, match="FAIRUSE_WORKER_ROCKSDB_WRITE_BUFFERS"):
        load_settings({"FAIRUSE_WORKER_ROCKSDB_WRITE_BUFFERS": raw})
