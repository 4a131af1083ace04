# Compiled form of upgrade.py (declarations only; see base.pxd).
from gateway.connection.closing cimport Closing

cdef class Upgrade(Closing):
    cpdef _upgrade(self, request, rest)
    cpdef _reject(self, exc)
