"""Training data: the type-safe tool registry, sample synthesis and augmentation, verification of every label,
decontamination against the evaluation suites, and the dataset files the data stage writes.

The tools' Python implementations live in :mod:`slmtune.catalog` (catalog files reference them by that name)."""
