"""Pure report computations (no I/O): distributions over projected onboardings."""
