# Compiled form of context.py: what a connection reads on every callback, as C fields
# (declarations only; see setup.py).
from gateway.ratelimit cimport FailureLimiter
from gateway.stats cimport Stats
from gateway.timers cimport Timers
from protocol.ids cimport IdFactory

cdef class ServerState:
    cdef public bint accepting

cdef class ConnectionContext:
    cdef public list fanout_batch
    cdef public IdFactory ids
    cdef public FailureLimiter limiter
    cdef public object limits
    cdef public object registry
    cdef public ServerState server
    cdef public Stats stats
    cdef public object tasks
    cdef public Timers timers
