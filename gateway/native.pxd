# Compiled form of native.py: the handler's fields as C slots, the connection typed in
# the two methods every connection runs through (its state, codec and methods reached
# as C fields and vtable calls; declarations only).
from gateway.auth cimport AuthGate
from gateway.connection.core cimport Connection as CConnection
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

    cpdef on_message(self, CConnection conn, data)
    cpdef _accept(self, CConnection conn, identity)
