# Compiled form of writer.py (declarations only; see base.pxd).
from gateway.connection.base cimport ConnectionBase

cdef class Writer(ConnectionBase):
    cpdef _write(self, data)
    cpdef _flush(self)
    cpdef bint write_frame(self, frame)
    cpdef bint send(self, message)
    cpdef bint send_text(self, text)
    cpdef bint send_bytes(self, data)
    cpdef bint send_raw(self, data)
    cpdef bint _send_compressed(self, long opcode, payload)
    cpdef write_control(self, frame)
    cpdef ping(self, payload=*)
