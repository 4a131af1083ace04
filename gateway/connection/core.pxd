# Compiled form of core.py (declarations only; see base.pxd).
from gateway.connection.http1 cimport Http1

cdef class Connection(Http1):
    cpdef data_received(self, data)
    cpdef _internal_error(self, exc, where)
    cpdef _dispatch(self, events)
    cpdef _on_peer_close(self, frame)
    cpdef hold_for_auth(self)
    cpdef release_held(self)
    cpdef authenticated(self, identity)
