# Compiled form of tokens.py: the prepared key as an extension type and the per-token
# helpers as C calls from ``verify_token`` (declarations only; see setup.py).

cimport cython

cdef class TokenKey:
    cdef object _inner
    cdef object _outer

    cpdef bytes mac(self, body)

cpdef bytes _b64e(raw)
cpdef bytes _b64d(text)
cpdef bytes _mac(secret, body)

@cython.locals(raw=bytes, body=bytes, dot=bytes, sig=bytes, expected=bytes)
cpdef verify_token(secret, token, now=*, leeway=*)
