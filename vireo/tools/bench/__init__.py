"""Benchmarks: engines (CPU and GPU), kernels, platform overhead, prefix caching, speculation."""
