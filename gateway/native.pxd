# Compiled form of native.py: the handler's fields as C slots (declarations only).
from gateway.auth cimport AuthGate
from gateway.stats cimport Stats

cdef class NativeHandler:
    cdef public AuthGate gate
    cdef public object app
    cdef public Stats stats
    cdef public object heartbeat
    cdef public double auth_timeout
    cdef public object _on_connect
    cdef public object _on_message
    cdef public object _on_close
