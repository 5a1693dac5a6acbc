"""Benchmarks: retrieval quality, answers, ingest throughput and latency (see README)."""
