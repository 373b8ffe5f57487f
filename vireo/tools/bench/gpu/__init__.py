"""Nsight Compute targets for the GPU kernels."""
