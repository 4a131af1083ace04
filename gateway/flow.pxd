# Compiled form of gateway/flow.py (Cython reads this beside the .py; see setup.py).
# Declarations only: the behaviour is in the .py, which is also the pure-Python twin.

cdef class ReadFlow:
    cdef public long paused
    cdef public object state
    cdef public object transport
    cpdef pause_reading_for(self, long reason)
    cpdef resume_reading_for(self, long reason)
