# Compiled form of base.py: the connection's fields as C slots, its internal methods
# called through a vtable. Declarations only: the behaviour is in the .py (setup.py).
from gateway.context cimport ConnectionContext
from gateway.flow cimport ReadFlow
from protocol.frames cimport FrameParser

cdef class ConnectionBase(ReadFlow):
    cdef public object buffer
    cdef public object close_code
    cdef public object codec
    cdef public object cork
    cdef public ConnectionContext ctx
    cdef public object data
    cdef public long deadline_slot
    cdef public object deflater
    cdef public double expires
    cdef public object groups
    cdef public object handler
    cdef public object held
    cdef public object id
    cdef public object info
    cdef public object ip
    cdef public double last_seen
    cdef public object message_cb
    cdef public FrameParser parser
    cdef public bint pinged
    cdef public object request
    cdef public object router
    cdef public object session
    cdef public object subprotocol
    cdef public object user

    cpdef _move(self, new)
    cpdef set_deadline(self, double delay)
    cpdef clear_deadline(self)
    cpdef close(self, code=*, reason=*)
    cpdef data_received(self, data)
