"""Operations: what an operator sees of the service, its Prometheus metrics and its
log lines.

Nothing is imported here, so that `ops.multiprocess` can run before prometheus_client
is first imported: prometheus_client picks its mode once, at import, from
PROMETHEUS_MULTIPROC_DIR. Import each module by its own name.
"""
