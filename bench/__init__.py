"""Benchmarks: retrieval quality, answers, ingest throughput and latency (see docs/benchmarks.md)."""
