/*
 * wsgen: the native client of uvgate-bench (one process = one generator worker).
 *
 * Why C: a Python client costs about as much CPU per connection as a lean Python server,
 * so on one core it cannot saturate the raw uvloop probe on another (the runs were
 * GENERATOR-BOUND). This one uses epoll (edge-triggered, one registration per socket),
 * non-blocking sockets, many connections in flight, frames masked once up front and
 * CLOCK_MONOTONIC timestamps. It does exactly what bench/scenarios.py does per scenario,
 * with the same failure kinds, so both generators report the same figures.
 *
 * Built on demand by bench/native/build.py (cc -O2), never committed as a binary.
 * Driven by bench/native/driver.py over stdin/stdout, one line per message:
 *   wsgen -> "ready"                 connections set up (connect: at once)
 *   driver -> "go T0_NS"             start the measured work
 *   wsgen -> "p OK ALIVE FAIL MSGS DELIV"   progress, every 250 ms
 *   wsgen -> "ramped RAMP_S ALIVE"   hold only: every connection dialled
 *   driver -> "stop"                 hold only: close and report
 *   driver -> "abort" (or EOF)       stop at once
 *   wsgen -> "done {json}"           the result; raw latency samples in SAMPLES.NAME.f64
 *   wsgen -> "error MESSAGE"         the run cannot go on (exit status 1)
 * Bad options: one line on stderr, exit status 2.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define RBUF (256 * 1024)
#define MAX_SAMPLES 400000 /* per metric, then stride decimation (as bench/stats.py) */
#define MAX_KINDS 64
#define MAX_SOURCES 64
#define CTL_TAG UINT64_MAX

enum { M_CONNECT, M_HOLD, M_ECHO, M_FANOUT };
enum { P_FREE, P_DIAL, P_HANDSHAKE, P_AUTH, P_JOIN, P_READY, P_CLOSING };
static const char *PHASE_NAME[] = {"free", "connect", "handshake", "auth", "join", "ready", "close"};

/* ---------------------------------------------------------------- options */
static int mode = M_CONNECT;
static struct sockaddr_storage target;
static socklen_t target_len;
static int family = AF_INET;
static char host_hdr[300];
static const char *path = "/ws";
static long count = 1000, concurrency = 50, depth = 1, window = 4, size = 32, worker = 0;
static double rate = 0, connect_timeout = 10, duration = 5, publish_rate = 0;
static int binary = 0, publisher = 0;
static const char *group = "bench";
static const char *auth_file = NULL, *samples_prefix = "wsgen";
static struct sockaddr_storage sources[MAX_SOURCES];
static socklen_t source_len[MAX_SOURCES];
static int n_sources = 0;

static void die_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("wsgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int parse_addr(const char *ip, int port, struct sockaddr_storage *out, socklen_t *len) {
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *a4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
        return AF_INET;
    }
    if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
        return AF_INET6;
    }
    return -1;
}

/* ---------------------------------------------------------------- clock, stats */
static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

typedef struct {
    const char *name;
    double *v;
    size_t n, cap, stride, skip;
    uint64_t count;
    double max;
} Samples;

static void sample_add(Samples *s, double v) {
    s->count++;
    if (v > s->max) s->max = v;
    if (++s->skip < s->stride) return;
    s->skip = 0;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = realloc(s->v, s->cap * sizeof(double));
        if (!s->v) abort();
    }
    s->v[s->n++] = v;
    if (s->n >= MAX_SAMPLES) { /* keep every 2nd: bounded memory, the whole run represented */
        size_t j = 0;
        for (size_t i = 0; i < s->n; i += 2) s->v[j++] = s->v[i];
        s->n = j;
        s->stride *= 2;
    }
}

static Samples lat_handshake = {"handshake_ms", 0, 0, 0, 1, 0, 0, 0};
static Samples lat_auth = {"auth_ms", 0, 0, 0, 1, 0, 0, 0};
static Samples lat_total = {"total_ms", 0, 0, 0, 1, 0, 0, 0};
static Samples lat_rtt = {"rtt_ms", 0, 0, 0, 1, 0, 0, 0};
static Samples lat_delivery = {"delivery_ms", 0, 0, 0, 1, 0, 0, 0};

static struct {
    char name[48];
    uint64_t n;
} kinds[MAX_KINDS];
static int n_kinds = 0;

static void count_failure(const char *kind) {
    for (int i = 0; i < n_kinds; i++)
        if (strcmp(kinds[i].name, kind) == 0) {
            kinds[i].n++;
            return;
        }
    int i = n_kinds < MAX_KINDS ? n_kinds++ : MAX_KINDS - 1; /* the last slot absorbs overflow */
    snprintf(kinds[i].name, sizeof(kinds[i].name), "%s", i == MAX_KINDS - 1 ? "other" : kind);
    kinds[i].n++;
}

static uint64_t total_failures(void) {
    uint64_t t = 0;
    for (int i = 0; i < n_kinds; i++) t += kinds[i].n;
    return t;
}

/* ---------------------------------------------------------------- frames */
static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A masked client frame (RFC 6455 5.2/5.3) of `n` payload bytes into `out` (n + 14 room). */
static size_t client_frame(uint8_t *out, int opcode, const uint8_t *p, size_t n) {
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        out[h++] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    memcpy(out + h, MASK, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) out[h + i] = p[i] ^ MASK[i & 3];
    return h + n;
}

typedef struct {
    uint8_t *b;
    size_t n;
} Buf;

static Buf make_frame(int opcode, const void *p, size_t n) {
    Buf f;
    f.b = malloc(n + 14);
    if (!f.b) abort();
    f.n = client_frame(f.b, opcode, p, n);
    return f;
}

static Buf upgrade_req, close_frame, join_frame, echo_frame;
static Buf *auth_frames;
static size_t n_auth;

/* ---------------------------------------------------------------- connections */
typedef struct {
    int fd;
    uint8_t phase, is_pub, close_sent, frag_op;
    uint32_t gen;
    uint32_t index;
    int64_t t_start, t_open, t_auth, deadline;
    uint8_t *in;
    uint32_t in_len, in_cap;
    uint8_t *out;
    uint32_t out_len, out_cap;
    uint8_t *frag;
    uint32_t frag_len;
    int64_t *sent; /* echo: send times, ring of `depth` */
    uint32_t s_head, s_count;
} Conn;

static Conn *conns;
static long n_slots;
static int ep;
static uint8_t *rbuf;

/* Run state (counters named as in bench/scenarios.py). */
static uint64_t ok_n, alive, peak, lost, messages, deliveries, published;
static long started, busy; /* dialled so far; connections counting against concurrency */
static long target_n;      /* connections to dial in this phase */
static int running, pub_done;
static int64_t go_ns, t_go, pub_end, first_ns, last_ns, next_pub;
static int64_t outstanding, pub_inflight;
static Conn *pub_conn;
static long src_i;
static long *free_slots, n_free; /* connect mode: slots to reuse, a stack */

static void conn_free(Conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->phase = P_FREE;
    c->gen++;
    c->in_len = c->out_len = c->frag_len = 0;
    c->close_sent = 0;
    c->s_head = c->s_count = 0;
    if (mode == M_CONNECT) free_slots[n_free++] = c - conns;
}

static void start_next(void);

/* The connection is over (failed, finished or lost); connect mode reuses the slot. */
static void conn_end(Conn *c) {
    int counted = c->phase != P_READY || mode == M_CONNECT;
    if (counted && c->phase != P_FREE) busy--;
    conn_free(c);
    if (mode == M_CONNECT || (mode == M_HOLD && running)) start_next();
}

static void fail(Conn *c, const char *kind) {
    count_failure(kind);
    conn_end(c);
}

static Conn *corked; /* while reading it: replies are gathered, then written in one call */

static void conn_write(Conn *c, const uint8_t *b, size_t n) {
    if (c->out_len == 0 && c != corked) {
        ssize_t w = write(c->fd, b, n);
        if (w == (ssize_t)n) return;
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) return; /* the read side reports it */
            w = 0;
        }
        b += w;
        n -= (size_t)w;
    }
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (uint32_t)(c->out_len + n) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (!c->out) abort();
    }
    memcpy(c->out + c->out_len, b, n);
    c->out_len += (uint32_t)n;
}

static void conn_flush(Conn *c) {
    while (c->out_len) {
        ssize_t w = write(c->fd, c->out, c->out_len);
        if (w <= 0) return;
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (uint32_t)w;
    }
}

static const char *connect_kind(int err, char *buf, size_t n) {
    switch (err) {
    case ECONNREFUSED: return "connect_refused";
    case ETIMEDOUT: return "connect_timeout";
    case EADDRNOTAVAIL: return "no_ephemeral_port";
    case EMFILE:
    case ENFILE: return "fd_limit";
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char *name = strerrorname_np(err);
    if (name) {
        snprintf(buf, n, "connect_%s", name);
        return buf;
    }
#endif
    snprintf(buf, n, "connect_errno%d", err);
    return buf;
}

static void dial(Conn *c, uint32_t index) {
    char kb[64];
    c->index = index;
    c->t_start = now_ns();
    c->phase = P_DIAL;
    busy++;
    started++;
    c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail(c, connect_kind(errno, kb, sizeof kb));
        return;
    }
    int one = 1;
    /* Persistent connections keep several frames in flight: no Nagle delay. connect/hold
     * never write while data is unacknowledged (each write answers a reply): no syscall. */
    if (mode == M_ECHO || mode == M_FANOUT) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (n_sources) {
        int s = (int)(src_i++ % n_sources);
        if (family == AF_INET) /* the port is chosen per 4-tuple at connect() */
            setsockopt(c->fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&sources[s], source_len[s]) < 0) {
            fail(c, connect_kind(errno, kb, sizeof kb));
            return;
        }
    }
    if (connect(c->fd, (struct sockaddr *)&target, target_len) < 0 && errno != EINPROGRESS) {
        fail(c, connect_kind(errno, kb, sizeof kb));
        return;
    }
    c->deadline = c->t_start + (int64_t)(connect_timeout * 1e9);
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = ((uint64_t)c->gen << 32) | (uint64_t)(c - conns);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        fail(c, "epoll_error");
        return;
    }
}

/* Dial while the phase wants more connections and the concurrency/rate allow it. */
static void start_next(void) {
    static int inside;
    if (inside) return; /* a dial that failed at once: the outer loop goes on (no recursion) */
    inside = 1;
    int64_t t = 0;
    while (started < target_n && busy < concurrency) {
        if (mode == M_HOLD && rate > 0 && running) {
            if (!t) t = now_ns();
            if (t_go + (int64_t)(started / rate * 1e9) > t) break; /* paced: later */
        }
        Conn *c;
        if (mode == M_CONNECT) {
            if (!n_free) break;
            c = &conns[free_slots[--n_free]];
        } else {
            c = &conns[started];
        }
        dial(c, (uint32_t)started);
    }
    inside = 0;
}

static void became_ready(Conn *c) {
    int64_t t = now_ns();
    c->phase = P_READY;
    ok_n++;
    alive++;
    if (alive > peak) peak = alive;
    sample_add(&lat_handshake, (c->t_open - c->t_start) / 1e6);
    sample_add(&lat_auth, (t - c->t_auth) / 1e6);
    if (mode == M_CONNECT) {
        /* RFC 6455 7.1.1: start the closing handshake; the server answers and closes. */
        conn_write(c, close_frame.b, close_frame.n);
        c->close_sent = 1;
        c->phase = P_CLOSING;
        c->deadline = t + 2000000000LL;
        alive--;
        return;
    }
    busy--; /* held connections no longer count against the dial concurrency */
    if (mode == M_HOLD) start_next();
}

/* Finds "key" : "value" (or a number) in a small JSON text; returns the value's start. */
static const uint8_t *json_field(const uint8_t *p, size_t n, const char *key, size_t *vlen) {
    size_t kl = strlen(key);
    const uint8_t *end = p + n;
    while (p < end) {
        const uint8_t *k = memmem(p, (size_t)(end - p), key, kl);
        if (!k) return NULL;
        const uint8_t *q = k + kl;
        while (q < end && (*q == ' ' || *q == '\t')) q++;
        if (q < end && *q == ':') {
            q++;
            while (q < end && (*q == ' ' || *q == '\t')) q++;
            int quoted = q < end && *q == '"';
            if (quoted) q++;
            const uint8_t *v = q;
            while (q < end && (quoted ? *q != '"' : (*q >= '0' && *q <= '9'))) q++;
            *vlen = (size_t)(q - v);
            return v;
        }
        p = k + kl;
    }
    return NULL;
}

static int json_type_is(const uint8_t *p, size_t n, const char *want) {
    size_t vl;
    const uint8_t *v = json_field(p, n, "\"type\"", &vl);
    return v && vl == strlen(want) && memcmp(v, want, vl) == 0;
}

static void publish_one(int64_t t) {
    char body[256];
    int n = snprintf(body, sizeof body, "{\"type\":\"publish\",\"group\":\"%s\",\"data\":\"%lld\"}",
                     group, (long long)t);
    uint8_t frame[300];
    size_t fl = client_frame(frame, 1, (const uint8_t *)body, (size_t)n);
    conn_write(pub_conn, frame, fl);
    published++;
}

static void app_message(Conn *c, const uint8_t *p, size_t n) {
    if (mode == M_ECHO) {
        int64_t t = now_ns();
        if (c->s_count) {
            sample_add(&lat_rtt, (t - c->sent[c->s_head]) / 1e6);
            c->s_head = (uint32_t)((c->s_head + 1) % depth);
            c->s_count--;
        }
        outstanding--;
        if (running) {
            messages++;
            conn_write(c, echo_frame.b, echo_frame.n);
            c->sent[(c->s_head + c->s_count) % depth] = t;
            c->s_count++;
            outstanding++;
        }
    } else if (mode == M_FANOUT) {
        int64_t t = now_ns();
        if (c->is_pub) { /* closed loop: our own copy came back, publish the next */
            pub_inflight--;
            if (running && t < pub_end) {
                publish_one(t);
                pub_inflight++;
            } else if (pub_inflight <= 0) {
                pub_done = 1;
            }
            return;
        }
        size_t vl;
        const uint8_t *v = json_field(p, n, "\"data\"", &vl);
        if (!v || vl == 0 || v[-1] != '"') return;
        int64_t ts = 0;
        for (size_t i = 0; i < vl && v[i] >= '0' && v[i] <= '9'; i++) ts = ts * 10 + (v[i] - '0');
        sample_add(&lat_delivery, (t - ts) / 1e6);
        deliveries++;
        if (!first_ns) first_ns = t;
        last_ns = t;
    }
}

static void on_message(Conn *c, const uint8_t *p, size_t n) {
    if (c->phase == P_READY) {
        app_message(c, p, n);
    } else if (c->phase == P_AUTH) {
        if (json_type_is(p, n, "auth_ok")) {
            if (mode == M_FANOUT && (!c->is_pub || publish_rate <= 0)) {
                c->phase = P_JOIN;
                conn_write(c, join_frame.b, join_frame.n);
            } else {
                became_ready(c);
            }
        } else if (json_type_is(p, n, "error")) {
            size_t vl;
            const uint8_t *v = json_field(p, n, "\"code\"", &vl);
            char kind[48];
            snprintf(kind, sizeof kind, "auth_rejected_%.*s", v ? (int)(vl < 8 ? vl : 8) : 0,
                     v ? (const char *)v : "");
            fail(c, kind);
        } else {
            fail(c, "bad_reply");
        }
    } else if (c->phase == P_JOIN) {
        if (json_type_is(p, n, "joined"))
            became_ready(c);
        else if (json_type_is(p, n, "error"))
            fail(c, "join_rejected");
        /* anything else (a message already broadcast) is ignored until joined */
    }
}

static void lost_or_closed(Conn *c, const char *before_ready) {
    if (c->phase == P_CLOSING) { /* connect: the planned end */
        sample_add(&lat_total, (now_ns() - c->t_start) / 1e6);
        conn_end(c);
    } else if (c->phase == P_READY) {
        alive--;
        lost++;
        conn_end(c);
    } else {
        fail(c, before_ready);
    }
}

/* Control frames and fragments; returns 0 when the connection ended. */
static int other_frame(Conn *c, int fin, int op, const uint8_t *p, size_t n) {
    if (op == 0x9) { /* ping -> pong with the same payload */
        uint8_t f[140];
        if (n <= 125) conn_write(c, f, client_frame(f, 0xA, p, n));
        return 1;
    }
    if (op == 0xA) return 1;
    if (op == 0x8) {
        int code = n >= 2 ? (p[0] << 8) | p[1] : 1005;
        if (!c->close_sent) {
            uint8_t f[20];
            conn_write(c, f, client_frame(f, 0x8, p, n >= 2 ? 2 : 0));
            c->close_sent = 1;
        }
        char kind[32];
        snprintf(kind, sizeof kind, "closed_%d", code);
        lost_or_closed(c, kind);
        return 0;
    }
    if ((op == 1 || op == 2) && !fin) { /* first fragment */
        c->frag_op = (uint8_t)op;
        c->frag_len = 0;
    } else if (op != 0) {
        fail(c, "protocol_error");
        return 0;
    }
    c->frag = realloc(c->frag, c->frag_len + n + 1);
    if (!c->frag) abort();
    memcpy(c->frag + c->frag_len, p, n);
    c->frag_len += (uint32_t)n;
    if (fin && op == 0) {
        uint32_t gen = c->gen;
        on_message(c, c->frag, c->frag_len);
        if (c->gen != gen) return 0;
        c->frag_len = 0;
    }
    return 1;
}

/* Consumes what it can of p[0..n); returns bytes consumed, or -1 when the connection ended. */
static ssize_t consume(Conn *c, const uint8_t *p, size_t n) {
    size_t pos = 0;
    uint32_t gen = c->gen;
    if (c->phase == P_HANDSHAKE) {
        const uint8_t *e = memmem(p, n, "\r\n\r\n", 4);
        if (!e) {
            if (n > 65536) {
                fail(c, "handshake_error");
                return -1;
            }
            return 0;
        }
        int status = 0;
        const uint8_t *sp = memchr(p, ' ', (size_t)(e - p));
        if (sp)
            for (const uint8_t *q = sp + 1; q < e && *q >= '0' && *q <= '9'; q++) status = status * 10 + (*q - '0');
        if (status != 101) {
            char kind[32];
            snprintf(kind, sizeof kind, "handshake_http_%d", status);
            fail(c, kind);
            return -1;
        }
        c->t_open = c->t_auth = now_ns();
        c->phase = P_AUTH;
        Buf *a = &auth_frames[c->index % n_auth];
        conn_write(c, a->b, a->n);
        pos = (size_t)(e - p) + 4;
    }
    while (n - pos >= 2) {
        uint8_t b0 = p[pos], b1 = p[pos + 1];
        uint64_t ln = b1 & 0x7F;
        size_t hdr = 2;
        if (ln == 126) {
            if (n - pos < 4) break;
            ln = ((uint64_t)p[pos + 2] << 8) | p[pos + 3];
            hdr = 4;
        } else if (ln == 127) {
            if (n - pos < 10) break;
            ln = 0;
            for (int i = 0; i < 8; i++) ln = (ln << 8) | p[pos + 2 + i];
            hdr = 10;
        }
        if (b1 & 0x80) { /* RFC 6455 5.1: servers never mask */
            fail(c, "protocol_error");
            return -1;
        }
        if (ln > (1u << 30)) {
            fail(c, "frame_too_large");
            return -1;
        }
        if (n - pos < hdr + ln) break;
        const uint8_t *payload = p + pos + hdr;
        pos += hdr + (size_t)ln;
        int op = b0 & 0x0F, fin = b0 & 0x80;
        if (fin && (op == 1 || op == 2))
            on_message(c, payload, (size_t)ln);
        else
            other_frame(c, fin, op, payload, (size_t)ln);
        if (c->gen != gen || c->phase == P_FREE) return -1;
    }
    return (ssize_t)pos;
}

static void on_input(Conn *c, const uint8_t *data, size_t n) {
    uint32_t gen = c->gen;
    if (c->in_len == 0) {
        ssize_t used = consume(c, data, n);
        if (used < 0 || c->gen != gen) return;
        data += used;
        n -= (size_t)used;
        if (!n) return;
    } else {
        if (c->in_len + n > c->in_cap) {
            c->in_cap = (uint32_t)(c->in_len + n) * 2;
            c->in = realloc(c->in, c->in_cap);
            if (!c->in) abort();
        }
        memcpy(c->in + c->in_len, data, n);
        c->in_len += (uint32_t)n;
        ssize_t used = consume(c, c->in, c->in_len);
        if (used < 0 || c->gen != gen) return;
        memmove(c->in, c->in + used, c->in_len - (size_t)used);
        c->in_len -= (uint32_t)used;
        return;
    }
    if (n > c->in_cap) {
        c->in_cap = (uint32_t)n * 2 > 512 ? (uint32_t)n * 2 : 512;
        c->in = realloc(c->in, c->in_cap);
        if (!c->in) abort();
    }
    memcpy(c->in, data, n);
    c->in_len = (uint32_t)n;
}

static void read_all(Conn *c, uint32_t ev) {
    uint32_t gen = c->gen;
    for (;;) {
        ssize_t r = read(c->fd, rbuf, RBUF);
        if (r > 0) {
            on_input(c, rbuf, (size_t)r);
            if (c->gen != gen) return;
            /* A short read drained the socket (edge-triggered), unless EOF is pending too. */
            if (r < RBUF && !(ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
        } else if (r == 0) {
            lost_or_closed(c, "closed_before_ready");
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            lost_or_closed(c, "reset_before_ready");
            return;
        }
    }
}

static void on_event(Conn *c, uint32_t ev) {
    uint32_t gen = c->gen;
    if (c->phase == P_DIAL) {
        if (ev & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t l = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            char kb[64];
            fail(c, connect_kind(err ? err : ECONNRESET, kb, sizeof kb));
            return;
        }
        if (!(ev & EPOLLOUT)) return;
        c->phase = P_HANDSHAKE;
        conn_write(c, upgrade_req.b, upgrade_req.n);
    } else if ((ev & EPOLLOUT) && c->out_len) {
        conn_flush(c);
    }
    if (!(ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    corked = c;
    read_all(c, ev);
    corked = NULL;
    if (c->gen == gen && c->out_len) conn_flush(c);
}

static void check_deadlines(int64_t t) {
    for (long i = 0; i < n_slots; i++) {
        Conn *c = &conns[i];
        if (c->phase == P_FREE || c->phase == P_READY || t < c->deadline) continue;
        if (c->phase == P_CLOSING) { /* the server did not close: count it, abort, go on */
            count_failure("close_timeout");
            sample_add(&lat_total, (t - c->t_start) / 1e6);
            conn_end(c);
        } else {
            char kind[32];
            snprintf(kind, sizeof kind, "%s_timeout", PHASE_NAME[c->phase]);
            fail(c, kind);
        }
    }
}

/* ---------------------------------------------------------------- control pipe */
static char ctl_buf[512];
static size_t ctl_len;
static int got_go, got_stop, got_abort;

static void say(const char *fmt, ...) {
    static char line[80 * 1024]; /* the longest is the "done" JSON (< 64 KiB) */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(1, line + off, (size_t)(n - off));
        if (w <= 0) {
            if (errno == EINTR) continue;
            exit(1); /* the driver is gone */
        }
        off += (int)w;
    }
}

static void read_ctl(void) {
    for (;;) {
        ssize_t r = read(0, ctl_buf + ctl_len, sizeof ctl_buf - 1 - ctl_len);
        if (r == 0) {
            got_abort = 1; /* the driver is gone: stop */
            return;
        }
        if (r < 0) return;
        ctl_len += (size_t)r;
        char *nl;
        while ((nl = memchr(ctl_buf, '\n', ctl_len))) {
            *nl = 0;
            if (strncmp(ctl_buf, "go", 2) == 0) {
                got_go = 1;
                go_ns = strlen(ctl_buf) > 3 ? atoll(ctl_buf + 3) : now_ns();
            } else if (strcmp(ctl_buf, "stop") == 0) {
                got_stop = 1;
            } else if (strcmp(ctl_buf, "abort") == 0) {
                got_abort = 1;
            }
            size_t used = (size_t)(nl - ctl_buf) + 1;
            memmove(ctl_buf, ctl_buf + used, ctl_len - used);
            ctl_len -= used;
        }
        if (ctl_len >= sizeof ctl_buf - 1) ctl_len = 0;
    }
}

/* ---------------------------------------------------------------- the loop */
static int64_t last_progress;

static void progress(int64_t t) {
    if (t - last_progress < 250000000LL) return;
    last_progress = t;
    say("p %llu %llu %llu %llu %llu", (unsigned long long)ok_n, (unsigned long long)alive,
        (unsigned long long)total_failures(), (unsigned long long)messages, (unsigned long long)deliveries);
}

/* --busy-poll: poll without sleeping. A server's write to a generator asleep in
 * epoll_wait pays for waking it (on a VM, an interprocessor interrupt and an exit to the
 * hypervisor, charged to the server as system time), and a slower server finds its
 * generator asleep more often: its figures would be inflated by the measurement. A
 * generator that never sleeps costs every server the same. The time its polls found
 * nothing is reported (spin_s) and is not counted as the generator's load. */
static int busy_poll = 0;
static int64_t spin_ns = 0;

static int poll_events(struct epoll_event *evs, int cap, int wait_ms) {
    if (!busy_poll || wait_ms == 0) return epoll_wait(ep, evs, cap, wait_ms);
    int64_t t0 = now_ns(), until = t0 + (int64_t)wait_ms * 1000000LL, t = t0;
    int n;
    while ((n = epoll_wait(ep, evs, cap, 0)) == 0) {
        t = now_ns(); /* the end of the last poll that found nothing */
        if (t >= until) break;
    }
    spin_ns += t - t0;
    return n;
}

/* One turn of the event loop: wait at most `wait_ms`, handle events, timers, control. */
static void turn(int wait_ms) {
    static struct epoll_event evs[1024];
    static int64_t next_scan;
    int n = poll_events(evs, 1024, wait_ms);
    for (int i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        if (d == CTL_TAG) {
            read_ctl();
            continue;
        }
        Conn *c = &conns[(uint32_t)d];
        if ((uint32_t)(d >> 32) != c->gen || c->phase == P_FREE) continue; /* a stale event */
        on_event(c, evs[i].events);
    }
    int64_t t = now_ns();
    if (t >= next_scan) {
        check_deadlines(t);
        next_scan = t + 50000000LL;
    }
    if (mode == M_HOLD && running) start_next();
    if (mode == M_FANOUT && pub_conn && running && publish_rate > 0) {
        while (next_pub <= t && t < pub_end && pub_conn->phase == P_READY) {
            publish_one(t);
            next_pub += (int64_t)(1e9 / publish_rate);
        }
    }
    if (got_go) progress(t);
}

static int wait_ms_until(int64_t deadline) {
    int64_t d = (deadline - now_ns()) / 1000000;
    return d < 0 ? 0 : d > 50 ? 50 : (int)d;
}

static void write_samples(Samples *s, char *json, size_t cap, size_t *len, int *first) {
    if (!s->count) return;
    char path_buf[4096];
    snprintf(path_buf, sizeof path_buf, "%s.%s.f64", samples_prefix, s->name);
    FILE *f = fopen(path_buf, "wb");
    if (!f || fwrite(s->v, sizeof(double), s->n, f) != s->n) {
        say("error cannot write %s: %s", path_buf, strerror(errno));
        exit(1);
    }
    fclose(f);
    *len += (size_t)snprintf(json + *len, cap - *len, "%s\"%s\":{\"count\":%llu,\"max\":%.6f,\"file\":\"%s\"}",
                             *first ? "" : ",", s->name, (unsigned long long)s->count, s->max, path_buf);
    *first = 0;
}

static void finish(double cpu_go, double ramp_s) {
    static char json[64 * 1024];
    size_t len = 0;
    double cpu = cpu_seconds() - cpu_go;
    len += (size_t)snprintf(json + len, sizeof json - len,
                            "{\"ok\":%llu,\"alive\":%llu,\"peak\":%llu,\"lost\":%llu,\"messages\":%llu,"
                            "\"deliveries\":%llu,\"published\":%llu,\"first_ns\":%lld,\"last_ns\":%lld,"
                            "\"go_ns\":%lld,\"wall_s\":%.6f,\"cpu_s\":%.6f,\"spin_s\":%.6f,\"held\":%llu,\"ramp_s\":%.6f,"
                            "\"failures\":{",
                            (unsigned long long)ok_n, (unsigned long long)alive, (unsigned long long)peak,
                            (unsigned long long)lost, (unsigned long long)messages,
                            (unsigned long long)deliveries, (unsigned long long)published,
                            (long long)first_ns, (long long)last_ns, (long long)go_ns, (now_ns() - t_go) / 1e9, cpu,
                            spin_ns / 1e9, (unsigned long long)alive, ramp_s);
    for (int i = 0; i < n_kinds; i++)
        len += (size_t)snprintf(json + len, sizeof json - len, "%s\"%s\":%llu", i ? "," : "", kinds[i].name,
                                (unsigned long long)kinds[i].n);
    len += (size_t)snprintf(json + len, sizeof json - len, "},\"latency\":{");
    int first = 1;
    Samples *all[] = {&lat_handshake, &lat_auth, &lat_total, &lat_rtt, &lat_delivery};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) write_samples(all[i], json, sizeof json, &len, &first);
    len += (size_t)snprintf(json + len, sizeof json - len, "}}");
    say("done %s", json);
}

static void close_all(void) {
    for (long i = 0; i < n_slots; i++)
        if (conns[i].fd >= 0) close(conns[i].fd);
}

static void check_abort(void) {
    if (got_abort) {
        close_all();
        exit(3);
    }
}

/* Dial `n` persistent connections (echo/fanout setup), 256 in flight, as open_many does. */
static void open_many(long n) {
    long saved = concurrency;
    concurrency = 256;
    target_n = n;
    start_next();
    while (busy > 0 || started < target_n) {
        turn(50);
        check_abort();
        start_next();
    }
    concurrency = saved;
}

static void load_auth(void) {
    FILE *f = fopen(auth_file, "r");
    if (!f) die_usage("cannot read --auth %s: %s", auth_file, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    size_t room = 16;
    auth_frames = malloc(room * sizeof(Buf));
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (!n) continue;
        if (n_auth == room) auth_frames = realloc(auth_frames, (room *= 2) * sizeof(Buf));
        auth_frames[n_auth++] = make_frame(1, line, (size_t)n);
    }
    free(line);
    fclose(f);
    if (!n_auth) die_usage("--auth %s holds no message", auth_file);
}

static void parse_args(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = 6001;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc) die_usage("option %s needs a value", k);
        const char *v = argv[++i];
        if (!strcmp(k, "--mode")) {
            if (!strcmp(v, "connect")) mode = M_CONNECT;
            else if (!strcmp(v, "hold")) mode = M_HOLD;
            else if (!strcmp(v, "echo")) mode = M_ECHO;
            else if (!strcmp(v, "fanout")) mode = M_FANOUT;
            else die_usage("unknown --mode %s", v);
        } else if (!strcmp(k, "--host")) host = v;
        else if (!strcmp(k, "--port")) port = atol(v);
        else if (!strcmp(k, "--path")) path = v;
        else if (!strcmp(k, "--count")) count = atol(v);
        else if (!strcmp(k, "--concurrency")) concurrency = atol(v);
        else if (!strcmp(k, "--rate")) rate = atof(v);
        else if (!strcmp(k, "--connect-timeout")) connect_timeout = atof(v);
        else if (!strcmp(k, "--duration")) duration = atof(v);
        else if (!strcmp(k, "--size")) size = atol(v);
        else if (!strcmp(k, "--depth")) depth = atol(v);
        else if (!strcmp(k, "--binary")) binary = atoi(v);
        else if (!strcmp(k, "--group")) group = v;
        else if (!strcmp(k, "--publisher")) publisher = atoi(v);
        else if (!strcmp(k, "--window")) window = atol(v);
        else if (!strcmp(k, "--publish-rate")) publish_rate = atof(v);
        else if (!strcmp(k, "--auth")) auth_file = v;
        else if (!strcmp(k, "--samples")) samples_prefix = v;
        else if (!strcmp(k, "--worker")) worker = atol(v);
        else if (!strcmp(k, "--busy-poll")) busy_poll = atoi(v);
        else if (!strcmp(k, "--source")) {
            if (n_sources == MAX_SOURCES) die_usage("at most %d --source", MAX_SOURCES);
            if (parse_addr(v, 0, &sources[n_sources], &source_len[n_sources]) < 0)
                die_usage("--source %s is not an IP address", v);
            n_sources++;
        } else die_usage("unknown option %s", k);
    }
    if (port < 1 || port > 65535) die_usage("--port must be 1..65535");
    family = parse_addr(host, (int)port, &target, &target_len);
    if (family < 0) die_usage("--host %s is not an IP address (the driver resolves names)", host);
    if (count < 0 || concurrency < 1 || depth < 1 || depth > 1024 || window < 1 || size < 0 || size > (1 << 20))
        die_usage("a count, concurrency, depth, window or size is out of range");
    if (strlen(group) > 128) die_usage("--group is longer than 128 bytes");
    if (!auth_file) die_usage("--auth FILE is required");
    snprintf(host_hdr, sizeof host_hdr, family == AF_INET6 ? "[%s]:%ld" : "%s:%ld", host, port);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    load_auth();
    char req[2048];
    int rl = snprintf(req, sizeof req,
                      "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dXZnYXRlLWJlbmNoLWtleQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                      path, host_hdr);
    if (rl >= (int)sizeof req) die_usage("--path is too long");
    upgrade_req.b = (uint8_t *)strdup(req);
    upgrade_req.n = (size_t)rl;
    close_frame = make_frame(0x8, "\x03\xe8", 2);
    char jb[200];
    int jl = snprintf(jb, sizeof jb, "{\"type\":\"join\",\"group\":\"%s\"}", group);
    join_frame = make_frame(1, jb, (size_t)jl);
    uint8_t *payload = malloc((size_t)size + 1);
    memset(payload, 'x', (size_t)size);
    echo_frame = make_frame(binary ? 2 : 1, payload, (size_t)size);
    free(payload);

    n_slots = mode == M_CONNECT ? (concurrency < count ? concurrency : count) : count + (publisher ? 1 : 0);
    if (n_slots < 1) n_slots = 1;
    conns = calloc((size_t)n_slots, sizeof(Conn));
    rbuf = malloc(RBUF);
    if (!conns || !rbuf) die_usage("out of memory for %ld connections", n_slots);
    free_slots = malloc((size_t)n_slots * sizeof(long));
    if (!free_slots) die_usage("out of memory");
    for (long i = n_slots - 1; i >= 0; i--) {
        conns[i].fd = -1;
        if (mode == M_CONNECT) free_slots[n_free++] = i;
    }
    if (mode == M_ECHO)
        for (long i = 0; i < n_slots; i++) conns[i].sent = malloc((size_t)depth * sizeof(int64_t));
    ep = epoll_create1(EPOLL_CLOEXEC);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK); /* the control pipe is read in the loop */
    struct epoll_event cev = {.events = EPOLLIN, .data.u64 = CTL_TAG};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &cev) < 0) {
        /* A file or /dev/null cannot be polled: "go" and the driver's EOF would never arrive. */
        fprintf(stderr, "wsgen: standard input must be the driver's pipe (uvgate-bench runs wsgen)\n");
        return 2;
    }

    /* -- setup: persistent connections first, so the measured window is pure work */
    if (mode == M_ECHO || mode == M_FANOUT) {
        open_many(count);
        if (publisher) {
            Conn *c = &conns[count];
            c->is_pub = 1;
            target_n = count + 1;
            concurrency = 256;
            dial(c, 1000000);
            while (c->phase != P_FREE && c->phase != P_READY) {
                turn(50);
                check_abort();
            }
            if (c->phase != P_READY) {
                say("error publisher could not connect and authenticate");
                return 1;
            }
            pub_conn = c;
        }
    }
    say("ready");
    while (!got_go) {
        turn(50);
        check_abort();
    }
    double cpu_go = cpu_seconds();
    t_go = now_ns();
    last_progress = t_go;
    running = 1;
    double ramp_s = 0;
    if (mode == M_CONNECT) {
        target_n = count;
        start_next();
        while (started < target_n || busy > 0) {
            turn(50);
            check_abort();
        }
    } else if (mode == M_HOLD) {
        target_n = count;
        start_next();
        while (started < target_n || busy > 0) {
            int w = 50;
            if (rate > 0 && started < target_n) w = wait_ms_until(t_go + (int64_t)(started / rate * 1e9));
            turn(w);
            check_abort();
        }
        ramp_s = (now_ns() - t_go) / 1e9;
        say("ramped %.6f %llu", ramp_s, (unsigned long long)alive);
        while (!got_stop) {
            turn(50);
            check_abort();
        }
    } else if (mode == M_ECHO) {
        messages = 0;
        int64_t t = now_ns();
        for (long i = 0; i < n_slots; i++) {
            Conn *c = &conns[i];
            if (c->phase != P_READY) continue;
            for (long d = 0; d < depth; d++) {
                conn_write(c, echo_frame.b, echo_frame.n);
                c->sent[(c->s_head + c->s_count) % depth] = t;
                c->s_count++;
            }
            outstanding += depth;
        }
        int64_t end = t + (int64_t)(duration * 1e9);
        while (now_ns() < end) {
            turn(wait_ms_until(end));
            check_abort();
        }
        running = 0;
        uint64_t counted = messages;
        int64_t drain_end = now_ns() + 2000000000LL;
        while (outstanding > 0 && alive && now_ns() < drain_end) {
            turn(wait_ms_until(drain_end));
            check_abort();
        }
        messages = counted;
    } else {
        int64_t t = now_ns();
        pub_end = t + (int64_t)(duration * 1e9);
        if (pub_conn && publish_rate <= 0) {
            for (long i = 0; i < window; i++) {
                publish_one(now_ns());
                pub_inflight++;
            }
            int64_t hard = pub_end + 5000000000LL;
            while (!pub_done && now_ns() < hard && pub_conn->phase == P_READY) {
                turn(wait_ms_until(hard));
                check_abort();
            }
        } else {
            next_pub = t;
            while (now_ns() < pub_end) {
                turn(pub_conn ? 1 : wait_ms_until(pub_end));
                check_abort();
            }
        }
        running = 0;
        /* Drain: the last publishes may still be on their way. */
        int64_t quiet_until = now_ns() + 500000000LL, hard_end = now_ns() + 5000000000LL;
        uint64_t seen = deliveries;
        while (now_ns() < hard_end) {
            turn(wait_ms_until(quiet_until));
            check_abort();
            if (deliveries != seen) {
                seen = deliveries;
                quiet_until = now_ns() + 500000000LL;
            } else if (now_ns() >= quiet_until) {
                break;
            }
        }
    }
    running = 0;
    finish(cpu_go, ramp_s);
    close_all();
    return 0;
}
