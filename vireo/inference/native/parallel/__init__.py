"""Tensor parallelism for the native engine: one model over several devices (`group`, `sharding`, `ranks`)."""
