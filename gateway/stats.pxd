# Compiled form of stats.py: the counters as C integers, so a connection's
# ``ctx.stats.ws_sent_bytes += n`` is one add in C (declarations only; see setup.py).

cdef class Stats:
    cdef public long long tcp_accepted
    cdef public long long tcp_closed
    cdef public long long ws_opened
    cdef public long long ws_closed
    cdef public long long handshake_rejected
    cdef public long long handshake_timeouts
    cdef public long long auth_ok
    cdef public long long auth_failed
    cdef public long long auth_timeouts
    cdef public long long rate_limited
    cdef public long long over_capacity
    cdef public long long protocol_errors
    cdef public long long slow_consumers
    cdef public long long proxy_refused
    cdef public long long ws_messages_received
    cdef public long long ws_received_bytes
    cdef public long long ws_messages_sent
    cdef public long long ws_sent_bytes
