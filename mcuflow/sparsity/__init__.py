"""Predefined sparsity patterns (numpy only): the formulas both the torch layers and the compiler use."""
