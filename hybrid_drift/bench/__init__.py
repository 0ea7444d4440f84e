"""Benchmark harness: every method on a labelled dataset, one run, one table."""

from .run import BenchConfig, markdown_table, per_kind_table, run_bench

__all__ = ["BenchConfig", "run_bench", "markdown_table", "per_kind_table"]
