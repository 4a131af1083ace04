# Compiled form of http1.py (declarations only; see base.pxd).
from gateway.connection.upgrade cimport Upgrade

cdef class Http1(Upgrade):
    cpdef _receive_http(self, data)
    cpdef bint _admit(self, request)
    cpdef _serve_requests(self)
    cpdef bint _serve_http(self, request, body)
    cpdef _send_http(self, request, response)
