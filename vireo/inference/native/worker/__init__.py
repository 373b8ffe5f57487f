"""Running a step on the device: the batch laid out as tensors, the paged KV cache, CUDA graphs."""
