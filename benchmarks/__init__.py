"""Benchmarks of skyshare; ``python -m benchmarks.run`` (``make bench``) writes BENCHMARKS.md."""
