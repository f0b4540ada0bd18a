"""Compatibility fixes for fairseq on current torch/numpy (filled in by the compat work)."""
