# Compiled form of handshake.py: typed locals on the path every upgrade takes, the
# header-name table as a C global and the small helpers as C calls (declarations only;
# the behaviour is in the .py, which is also the pure-Python twin; see setup.py).
cimport cython

cdef dict _COMMON_SPELLINGS
cdef frozenset _HTTP_VERSIONS

cpdef bint _has_token(str value, str token)
cpdef _request(method, target, path, query, headers, version, keep_alive, content_length)

@cython.locals(start=Py_ssize_t, end=Py_ssize_t, n=Py_ssize_t, consumed=Py_ssize_t,
               parsed=tuple, headers=dict, method=str, target=str, version=str, path=str,
               query=str, conn=str, te=str, cl=str)
cpdef parse_request(buf, Py_ssize_t max_size=*, Py_ssize_t max_headers=*,
                    bint allow_chunked=*)

@cython.locals(line_end=Py_ssize_t, lines=Py_ssize_t, raw=bytes, head=str, headers=dict,
               field_line=str, name=str, colon=str, value=str, lowered=str, method=str,
               target=str, version=str)
cpdef tuple _parse_head_py(buf, Py_ssize_t start, Py_ssize_t end, Py_ssize_t max_headers)

@cython.locals(up=str)
cpdef bint is_upgrade(req)

@cython.locals(key=str)
cpdef bint _valid_key(key)

@cython.locals(up=str, conn=str, key=str, subprotocol=str)
cpdef tuple upgrade_terms(req, subprotocols=*, allowed_origins=*, bint deflate=*)

cpdef bytes accept_response_for(str key, subprotocol=*, extensions=*, extra_headers=*)
