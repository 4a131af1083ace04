# Compiled form of ratelimit.py: the failure window table as a C field, ``retry_after``
# (asked twice per connection: at the upgrade and at the auth message) through a vtable
# (declarations only; the behaviour is in the .py, see setup.py).

cdef class FailureLimiter:
    cdef public object _clock
    cdef public dict _entries
    cdef public object limit
    cdef public object max_entries
    cdef public object shared
    cdef public object window

    cpdef retry_after(self, ip)
