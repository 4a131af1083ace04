# Compiled form of auth.py: the gate's fields as C slots, ``verify`` called through a
# vtable by the routes that hold a typed gate (declarations only; see setup.py).
from gateway.ratelimit cimport FailureLimiter

cdef class AuthGate:
    cdef public FailureLimiter limiter
    cdef public object stats
    cdef public object tasks
    cdef public dict _in_flight
    cdef public object verifier
    cdef public object verifier_name
    cdef public bint requires_message
    cdef public bint needs_info

    cpdef verify(self, conn, message, accept, refuse)
    cpdef int retry_after(self, ip) except? -1
