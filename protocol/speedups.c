/* protocol.speedups: the request head of the HTTP/1.1 upgrade, scanned in C.
 *
 * One function, parse_head(buf, start, stop, max_headers), the fast path of
 * protocol.handshake.parse_request: it answers the plain valid request and nothing
 * else. For a head it accepts it returns what the Python code would have built,
 * (method, target, version, headers); for anything else (a malformed line, a header
 * repeated, too many headers, a version other than HTTP/1.1 or 1.0) it returns
 * None and parse_request runs its Python path, which decides the error. So every
 * refusal and its status stay in one place (handshake.py), and this file only has
 * to be right about what it accepts: tests/protocol/test_speedups.py and the
 * "handshake_diff" fuzz target compare it with the Python path on every input.
 *
 * Why C: the Python path (regular expressions, str.split, partition and strip per
 * field line) is most of the user CPU an upgrade costs; one pass over the bytes
 * here does its work with one allocation per string it returns.
 *
 * The rules, as handshake.py applies them (RFC 9112 3, RFC 9110 5.1, 5.5, 5.6.2):
 *   request-line = token SP 1*(%x21-7E / %x80-FF) SP "HTTP/1." ("1" / "0") CRLF
 *   field-line   = token ":" *(HTAB / SP / %x21-7E / %x80-FF) CRLF
 * names lower-cased, values stripped of SP and HTAB at both ends, bytes decoded as
 * latin-1. The region [start, stop) ends with the CRLF of its last line (the blank
 * line that ends the head is not in it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static unsigned char TCHAR[256];  /* RFC 9110 5.6.2 tchar */
static unsigned char FIELD[256];  /* a field value's characters: HTAB, SP, VCHAR, obs-text */
static unsigned char TARGET[256]; /* a request-target's characters as handshake.py takes them */

static PyObject *HTTP_11, *HTTP_10, *METHOD_GET;

/* The names clients send on an upgrade, lower-case: returned as one shared str each
 * (interned, hash cached), not made again per request. */
static const char *const COMMON_NAMES[] = {
    "host", "upgrade", "connection", "origin", "user-agent", "accept",
    "accept-encoding", "accept-language", "cache-control", "pragma", "cookie",
    "authorization", "content-length", "content-type", "sec-websocket-key",
    "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions",
    "x-forwarded-for", "transfer-encoding",
};
#define N_COMMON (sizeof(COMMON_NAMES) / sizeof(COMMON_NAMES[0]))
static PyObject *common_str[N_COMMON];
static Py_ssize_t common_len[N_COMMON];

static inline unsigned char ascii_lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* A new reference to the lower-cased name (all tchar bytes, so ASCII). */
static PyObject *lowered_name(const unsigned char *p, Py_ssize_t n) {
    for (size_t i = 0; i < N_COMMON; i++) {
        if (common_len[i] != n)
            continue;
        const char *c = COMMON_NAMES[i];
        Py_ssize_t j = 0;
        while (j < n && ascii_lower(p[j]) == (unsigned char)c[j])
            j++;
        if (j == n) {
            Py_INCREF(common_str[i]);
            return common_str[i];
        }
    }
    PyObject *s = PyUnicode_New(n, 127);
    if (s == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(s);
    for (Py_ssize_t j = 0; j < n; j++)
        out[j] = ascii_lower(p[j]);
    return s;
}

/* A new reference to bytes [p, p + n) decoded as latin-1. */
static PyObject *latin1(const unsigned char *p, Py_ssize_t n, int ascii) {
    if (!ascii)
        return PyUnicode_DecodeLatin1((const char *)p, n, NULL);
    PyObject *s = PyUnicode_New(n, 127);
    if (s != NULL)
        memcpy(PyUnicode_1BYTE_DATA(s), p, (size_t)n);
    return s;
}

PyDoc_STRVAR(parse_head_doc,
"parse_head(buf, start, stop, max_headers) -> (method, target, version, headers) | None\n\n"
"The request head in buf[start:stop] (request line and field lines, each ending with\n"
"CRLF) as protocol.handshake.parse_request reads it, or None when the Python path must\n"
"decide (anything but a plain valid head with at most max_headers distinct fields).");

static PyObject *parse_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "parse_head takes 4 arguments");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *result = NULL, *method = NULL, *target = NULL, *headers = NULL;
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t stop = PyLong_AsSsize_t(args[2]);
    Py_ssize_t max_headers = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred())
        goto done;
    if (start < 0 || stop > view.len || start > stop)
        goto fallback;

    const unsigned char *p = (const unsigned char *)view.buf + start;
    const unsigned char *const end = (const unsigned char *)view.buf + stop;

    /* Request line: method SP target SP version CRLF. */
    const unsigned char *m0 = p;
    while (p < end && TCHAR[*p])
        p++;
    if (p == m0 || p == end || *p != ' ')
        goto fallback;
    Py_ssize_t mlen = p - m0;
    const unsigned char *t0 = ++p;
    int t_ascii = 1;
    while (p < end && TARGET[*p]) {
        t_ascii &= *p < 0x80;
        p++;
    }
    if (p == t0 || p == end || *p != ' ')
        goto fallback;
    Py_ssize_t tlen = p - t0;
    p++;
    if (end - p < 10 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '1' && p[7] != '0') ||
        p[8] != '\r' || p[9] != '\n')
        goto fallback;
    PyObject *version = p[7] == '1' ? HTTP_11 : HTTP_10;
    p += 10;

    if (mlen == 3 && m0[0] == 'G' && m0[1] == 'E' && m0[2] == 'T') {
        Py_INCREF(METHOD_GET);
        method = METHOD_GET;
    } else {
        method = latin1(m0, mlen, 1);
    }
    if (method == NULL)
        goto done;
    target = latin1(t0, tlen, t_ascii);
    headers = PyDict_New();
    if (target == NULL || headers == NULL)
        goto done;

    /* Field lines: name ":" value CRLF, until the end of the region. */
    Py_ssize_t count = 0;
    while (p < end) {
        if (++count > max_headers)
            goto fallback;
        const unsigned char *n0 = p;
        while (p < end && TCHAR[*p])
            p++;
        if (p == n0 || p == end || *p != ':')
            goto fallback;
        Py_ssize_t nlen = p - n0;
        const unsigned char *v0 = ++p;
        int v_ascii = 1;
        while (p < end && FIELD[*p]) {
            v_ascii &= *p < 0x80;
            p++;
        }
        /* Only CRLF ends a line: a bare CR or LF, or any other control, is the
         * Python path's to refuse. */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            goto fallback;
        const unsigned char *v1 = p;
        p += 2;
        while (v0 < v1 && (*v0 == ' ' || *v0 == '\t'))
            v0++;
        while (v1 > v0 && (v1[-1] == ' ' || v1[-1] == '\t'))
            v1--;
        PyObject *name = lowered_name(n0, nlen);
        if (name == NULL)
            goto done;
        /* A repeated field is combined by the Python path (RFC 9110 5.3). */
        int seen = PyDict_Contains(headers, name);
        if (seen != 0) {
            Py_DECREF(name);
            if (seen < 0)
                goto done;
            goto fallback;
        }
        PyObject *value = latin1(v0, v1 - v0, v_ascii);
        if (value == NULL) {
            Py_DECREF(name);
            goto done;
        }
        int failed = PyDict_SetItem(headers, name, value);
        Py_DECREF(name);
        Py_DECREF(value);
        if (failed)
            goto done;
    }
    result = PyTuple_Pack(4, method, target, version, headers);
    goto done;

fallback:
    Py_INCREF(Py_None);
    result = Py_None;
done:
    Py_XDECREF(method);
    Py_XDECREF(target);
    Py_XDECREF(headers);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"parse_head", (PyCFunction)(void (*)(void))parse_head, METH_FASTCALL, parse_head_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "protocol.speedups",
    "C fast paths for protocol/ (see speedups.c); the Python code is the reference.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_speedups(void) {
    const char *tchars = "!#$%&'*+-.^_`|~";
    for (const char *c = tchars; *c; c++)
        TCHAR[(unsigned char)*c] = 1;
    for (int c = 0; c < 256; c++) {
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            TCHAR[c] = 1;
        FIELD[c] = c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80;
        TARGET[c] = (c >= 0x21 && c <= 0x7e) || c >= 0x80;
    }
    HTTP_11 = PyUnicode_InternFromString("HTTP/1.1");
    HTTP_10 = PyUnicode_InternFromString("HTTP/1.0");
    METHOD_GET = PyUnicode_InternFromString("GET");
    if (HTTP_11 == NULL || HTTP_10 == NULL || METHOD_GET == NULL)
        return NULL;
    for (size_t i = 0; i < N_COMMON; i++) {
        common_str[i] = PyUnicode_InternFromString(COMMON_NAMES[i]);
        if (common_str[i] == NULL)
            return NULL;
        common_len[i] = (Py_ssize_t)strlen(COMMON_NAMES[i]);
    }
    return PyModule_Create(&module_def);
}
