"""Prometheus metrics shared by every service: instruments, database-derived gauges, bus
gauges and the small HTTP endpoint the pipeline services serve them on."""
