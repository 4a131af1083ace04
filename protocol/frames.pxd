# Compiled form of frames.py: the parser's state as C fields, typed locals on the path
# every message takes (declarations only; the behaviour is in the .py, see setup.py).
cimport cython

cdef class FrameParser:
    cdef public object _buf
    cdef public object _decoder
    cdef public bint _done
    cdef public bint _frag_compressed
    cdef public long _frag_op
    cdef public object _frag_parts
    cdef public Py_ssize_t _frag_size
    cdef public object _inflater
    cdef public Py_ssize_t _max
    cdef public Py_ssize_t _need
    cdef public bint _require_mask
    cdef public object _utf8_check

    @cython.locals(n=Py_ssize_t, b0=long, b1=long, hlen=Py_ssize_t)
    cpdef feed_message(self, data)

# Helpers of every connection's close frame (and of unmasking): C calls from the parser.
cpdef _unmask(buf, Py_ssize_t start, Py_ssize_t end)
cpdef _close_event(payload)
cpdef _close_frame(code, reason)
cpdef bytes _header(long b0, Py_ssize_t n)
