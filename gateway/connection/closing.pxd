# Compiled form of closing.py (declarations only; see base.pxd).
from gateway.connection.writer cimport Writer

cdef class Closing(Writer):
    cpdef close(self, code=*, reason=*)
    cpdef abort(self, code=*, reason=*)
    cpdef _fail(self, code, reason)
    cpdef _close_transport(self)
    cpdef _leave_open(self, code)
