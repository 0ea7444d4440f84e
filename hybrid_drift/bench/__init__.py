"""Benchmark harness: every method on a labelled dataset, one run, one table."""

from .run import BenchConfig, run_bench
from .tables import markdown_table, per_kind_table

__all__ = ["BenchConfig", "run_bench", "markdown_table", "per_kind_table"]
