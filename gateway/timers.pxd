# Compiled form of timers.py: the clock and the pending/closing sets as C fields, so a
# connection's ``ctx.timers.pending.add(self)`` is a field load and one PySet_Add
# (declarations only; the behaviour is in the .py, see setup.py).

cdef class Timers:
    cdef public object _handle
    cdef public list _jobs
    cdef public double _next_sweep
    cdef public bint _stopping
    cdef public set closing
    cdef public double now
    cdef public set pending
    cdef public object wheel
