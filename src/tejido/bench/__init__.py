"""Benchmarks behind `tejido bench ...`: each returns records
``{"system", "workload", "metric", "value", "unit", ...}`` (see docs/benchmarks.md)."""

from tejido.bench.records import Record, print_table, write_json

__all__ = ["Record", "print_table", "write_json"]
