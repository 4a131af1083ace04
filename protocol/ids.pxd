# Compiled form of ids.py: the ids made ahead and the prefix as C fields, ``new`` called
# through a vtable by the upgrade (declarations only; the behaviour is in the .py, see
# setup.py).

cdef class IdFactory:
    cdef public list _ids
    cdef public str _prefix
    cdef public object node_id
    cdef public object worker

    cpdef str new(self)
