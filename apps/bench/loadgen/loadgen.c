// The benchmark's load generator: one thread, epoll, non-blocking sockets. It speaks the talk
// protocol (send a line, get back "You sent: '<line>'\n") over plain TCP, or over comm-stream
// (the byte stream in binary WebSocket messages, @comm/uws) with --ws; either of them over TLS
// with --tls (OpenSSL, non-blocking: SSL_connect, SSL_read and SSL_write in the same event loop).
// Every reply is checked byte for byte against the line it answers; latencies go into a
// log-linear histogram.
//
//   loadgen --port P [--host 127.0.0.1] --mode rr|pipelined|connect|idle [--conns N] [--depth D]
//           [--size L] [--seconds T] [--warmup W] [--ws] [--timeout S]
//           [--tls [--sni localhost] [--ca FILE]]
//
// rr:        each of N connections sends a line, waits for its reply, sends the next.
// pipelined: each of N connections keeps D lines in flight (a new line per reply).
// connect:   N connections at a time: connect, send a line, read the reply, close; again.
// idle:      opens N connections, each sends one line and reads its reply; then prints an
//            {"event":"established"} line and holds them open until stdin has a line or ends
//            (or T seconds pass), closes them and prints the result.
// Lines are L bytes ("Hello self. 0000000042" padded with letters); latency is from the moment a
// line is handed to write(2) (TLS: to SSL_write) (connect: from connect(2)) to the moment its
// reply is parsed.
// --tls: every connection does its TLS handshake (SNI --sni, default localhost; the certificate
// and the name verified against --ca when given, else not verified) and, with --ws, its upgrade,
// before the clock starts (rr, pipelined); connect and idle count the handshake in.
// The result is one JSON object on stdout. Exit status 0 unless the arguments are wrong (2) or
// --ca cannot be read (2).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "tls.h"

enum { MODE_RR, MODE_PIPELINED, MODE_CONNECT, MODE_IDLE };
enum { S_FREE, S_CONNECTING, S_TLS, S_HANDSHAKE, S_RUNNING, S_HOLDING, S_DONE };

#define MAX_DEPTH 256
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define STDIN_TAG 0xFFFFFFFFu

typedef struct {
  int fd;
  SSL *ssl; // --tls: the connection's TLS, from connect to drop
  int state;
  int read_wants_write; // TLS: the last read could not finish until the socket is writable
  int want_out;
  uint32_t seq_sent, seq_recv; // next line to send, next reply expected
  int inflight;
  uint64_t sent_at[MAX_DEPTH]; // ring, indexed by seq % depth
  uint64_t started;            // connect mode: when connect(2) was called
  buf_t raw;                   // ws: bytes as received (frames)
  buf_t in;                    // the byte stream: replies not parsed yet
  buf_t out;                   // bytes not yet written
  size_t out_off;
  uint32_t mask;
} conn_t;

static int mode = MODE_RR, nconns = 50, depth = 1, line_size = 0, ws = 0, tls = 0;
static const char *sni = "localhost", *ca_file = NULL;
static SSL_CTX *tls_ctx;
static int tls_failures_told;
static char tls_session[128]; // the protocol and cipher of the first handshake that finished
static double seconds = 3, warmup = 0, timeout_s = 120;
static const char *host = "127.0.0.1";
static int port = 0;
static struct sockaddr_in addr;
static int ep;
static conn_t *conns;
static uint64_t t_warm, t_end;
static int measuring = 0;
static uint64_t replies, errors, wrong, closed_by_peer, connected, completed_total;

// ---- time and histogram ----
static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define SUB 128
static uint64_t hist[64 * SUB];
static uint64_t hist_count, hist_max;

static void hist_add(uint64_t v) {
  int idx;
  if (v < SUB) idx = (int)v;
  else {
    int e = 63 - __builtin_clzll(v);
    int shift = e - 7;
    idx = (shift + 1) * SUB + (int)((v >> shift) - SUB);
  }
  hist[idx]++;
  hist_count++;
  if (v > hist_max) hist_max = v;
}

static double hist_value(int idx) {
  if (idx < SUB) return idx;
  int shift = idx / SUB - 1;
  uint64_t sub = (uint64_t)(idx % SUB + SUB);
  return (double)(sub << shift) + (double)(1ull << shift) / 2.0;
}

static double hist_pct(double p) {
  if (hist_count == 0) return 0;
  uint64_t want = (uint64_t)(p * (double)hist_count + 0.999999);
  if (want < 1) want = 1;
  uint64_t seen = 0;
  for (int i = 0; i < 64 * SUB; i++) {
    seen += hist[i];
    if (seen >= want) return hist_value(i);
  }
  return (double)hist_max;
}


// ---- the protocol ----
static int the_line_len(void) { return line_size > 22 ? line_size : 22; }

static char *line_tmpl, *reply_tmpl; // line 0 and its reply: only the ten digits differ

static void put_digits(char *p, uint32_t v) {
  for (int i = 9; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

static int reply_len(void) { return the_line_len() + 13; } // You sent: '...'\n

static void make_templates(void) {
  int n = the_line_len();
  line_tmpl = malloc((size_t)n + 1);
  memcpy(line_tmpl, "Hello self. 0000000000", 22);
  for (int i = 22; i < n; i++) line_tmpl[i] = (char)('a' + (i % 26));
  line_tmpl[n] = '\n';
  reply_tmpl = malloc((size_t)reply_len());
  memcpy(reply_tmpl, "You sent: '", 11);
  memcpy(reply_tmpl + 11, line_tmpl, (size_t)n);
  reply_tmpl[11 + n] = '\'';
  reply_tmpl[12 + n] = '\n';
}

// Line number `seq` into `dst`: the_line_len() bytes and the newline.
static void make_line(char *dst, uint32_t seq) {
  memcpy(dst, line_tmpl, (size_t)the_line_len() + 1);
  put_digits(dst + 12, seq);
}

// Whether `got` (reply_len() bytes) is the reply to line `seq`.
static int is_reply(const char *got, uint32_t seq) {
  char digits[10];
  put_digits(digits, seq);
  size_t rl = (size_t)reply_len();
  return memcmp(got, reply_tmpl, 23) == 0 && memcmp(got + 23, digits, 10) == 0 &&
         memcmp(got + 33, reply_tmpl + 33, rl - 33) == 0;
}

static uint32_t next_mask(conn_t *c) {
  uint32_t x = c->mask ? c->mask : 0x9e3779b9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return c->mask = x;
}

// Queues `payload` for sending: as is on TCP, as masked binary messages over comm-stream.
static void emit(conn_t *c, const char *payload, size_t n, int opcode) {
  if (!ws) {
    buf_add(&c->out, payload, n);
    return;
  }
  size_t off = 0;
  do {
    size_t chunk = n - off > 65536 ? 65536 : n - off;
    unsigned char h[14];
    int hl = 0;
    h[hl++] = (unsigned char)(0x80 | opcode);
    if (chunk < 126) h[hl++] = (unsigned char)(0x80 | chunk);
    else {
      h[hl++] = 0x80 | 126;
      h[hl++] = (unsigned char)(chunk >> 8);
      h[hl++] = (unsigned char)chunk;
    }
    uint32_t m = next_mask(c);
    unsigned char mk[4] = {(unsigned char)(m >> 24), (unsigned char)(m >> 16), (unsigned char)(m >> 8),
                           (unsigned char)m};
    memcpy(h + hl, mk, 4);
    hl += 4;
    buf_add(&c->out, h, (size_t)hl);
    buf_reserve(&c->out, chunk);
    unsigned char *dst = (unsigned char *)c->out.p + c->out.len;
    uint64_t m8;
    unsigned char mk8[8];
    memcpy(mk8, mk, 4);
    memcpy(mk8 + 4, mk, 4);
    memcpy(&m8, mk8, 8);
    size_t i = 0;
    for (; i + 8 <= chunk; i += 8) {
      uint64_t w;
      memcpy(&w, payload + off + i, 8);
      w ^= m8;
      memcpy(dst + i, &w, 8);
    }
    for (; i < chunk; i++) dst[i] = (unsigned char)payload[off + i] ^ mk[i & 3];
    c->out.len += chunk;
    off += chunk;
  } while (off < n);
}

static void set_events(conn_t *c, int out) {
  if (c->want_out == out) return;
  c->want_out = out;
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = (uint32_t)(c - conns)};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(conn_t *c, int state);

// Writes what is queued; returns -1 if the connection failed (and was dropped).
static int flush_out(conn_t *c) {
  while (c->out_off < c->out.len) {
    ssize_t n = io_write(c->fd, c->ssl, c->out.p + c->out_off, c->out.len - c->out_off);
    if (n < 0) {
      if (n == IO_AGAIN) {
        set_events(c, 1);
        return 0;
      }
      if (n == IO_WANT_READ) return 0; // TLS: on_readable flushes again
      errors++;
      drop(c, S_DONE);
      return -1;
    }
    c->out_off += (size_t)n;
  }
  c->out.len = 0;
  c->out_off = 0;
  set_events(c, 0);
  return 0;
}

// Queues lines until `depth` are in flight.
static void fill(conn_t *c) {
  int want = mode == MODE_PIPELINED ? depth : 1;
  int n = the_line_len();
  if (c->inflight >= want) return;
  int count = want - c->inflight;
  static char *batch;
  static size_t batch_cap;
  size_t need = (size_t)count * (size_t)(n + 1);
  if (need > batch_cap) {
    batch = realloc(batch, need);
    batch_cap = need;
  }
  uint64_t t = now_ns();
  for (int i = 0; i < count; i++) {
    make_line(batch + (size_t)i * (size_t)(n + 1), c->seq_sent);
    c->sent_at[c->seq_sent % MAX_DEPTH] = t;
    c->seq_sent++;
    c->inflight++;
  }
  emit(c, batch, need, 2);
}

static void start_conn(conn_t *c);

static void drop(conn_t *c, int state) {
  if (c->ssl) {
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  c->read_wants_write = 0;
  if (c->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
  c->state = state;
  c->raw.len = c->in.len = c->out.len = c->out_off = 0;
  c->want_out = 0;
}

static void on_open(conn_t *c) {
  connected++;
  if (ws) {
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: comm-stream\r\n\r\n",
                     host, port);
    buf_add(&c->out, req, (size_t)n);
    c->state = S_HANDSHAKE;
  } else c->state = S_RUNNING;
}

// Parses complete replies in c->in. Returns -1 if the connection was dropped.
static int take_replies(conn_t *c) {
  size_t rl = (size_t)reply_len();
  size_t at = 0;
  uint64_t t = 0;
  while (c->in.len - at > 0) {
    size_t len;
    int ok;
    if (c->in.len - at >= rl && c->inflight > 0 && is_reply(c->in.p + at, c->seq_recv)) {
      len = rl; // the expected reply, which has one newline: its last byte
      ok = 1;
    } else {
      char *nl = memchr(c->in.p + at, '\n', c->in.len - at);
      if (!nl) break;
      len = (size_t)(nl - (c->in.p + at)) + 1;
      ok = 0;
    }
    if (!t) t = now_ns();
    if (c->inflight <= 0) {
      wrong++;
      at += len;
      continue;
    }
    if (!ok) wrong++;
    uint64_t since = mode == MODE_CONNECT ? c->started : c->sent_at[c->seq_recv % MAX_DEPTH];
    c->seq_recv++;
    c->inflight--;
    completed_total++;
    if (measuring && t >= t_warm && t < t_end) {
      replies++;
      hist_add(t - since);
    }
    at += len;
    if (mode == MODE_CONNECT || mode == MODE_IDLE) break;
  }
  buf_consume(&c->in, at);
  if (mode == MODE_CONNECT && c->inflight == 0 && c->seq_recv > 0) {
    drop(c, S_FREE);
    if (!measuring || now_ns() < t_end) start_conn(c);
    return -1;
  }
  if (mode == MODE_IDLE && c->inflight == 0 && c->seq_recv > 0 && c->state == S_RUNNING) {
    c->state = S_HOLDING;
    return 0;
  }
  if ((mode == MODE_RR || mode == MODE_PIPELINED) && measuring && now_ns() < t_end) fill(c);
  return 0;
}

// comm-stream: takes the server's frames out of c->raw, the byte stream into c->in, answers pings.
static int take_frames(conn_t *c) {
  size_t at = 0;
  for (;;) {
    int op;
    unsigned char *payload;
    uint64_t len;
    size_t size = ws_frame((unsigned char *)c->raw.p + at, c->raw.len - at, &op, &payload, &len);
    if (size == 0) break;
    if (op == 0 || op == 1 || op == 2) {
      if (len == 0 && op != 0) { // an empty message is the server's FIN
        closed_by_peer++;
        drop(c, S_DONE);
        return -1;
      }
      buf_add(&c->in, payload, (size_t)len);
    } else if (op == 8) {
      closed_by_peer++;
      drop(c, S_DONE);
      return -1;
    } else if (op == 9) {
      emit(c, (const char *)payload, (size_t)len, 10); // pong; `ack N` needs nothing else here
    }
    at += size;
  }
  buf_consume(&c->raw, at);
  return 0;
}

// A connection that has failed or was closed by the server: counted, dropped, restarted in connect mode.
static void lost(conn_t *c, int by_peer) {
  if (by_peer && (c->state == S_HOLDING || c->state == S_RUNNING)) closed_by_peer++;
  else errors++;
  int restart = mode == MODE_CONNECT && (!measuring || now_ns() < t_end);
  drop(c, mode == MODE_CONNECT ? S_FREE : S_DONE);
  if (restart) start_conn(c);
}

// TCP is connected (and, with --tls, the handshake done): the upgrade request, or the first lines.
static void on_established(conn_t *c) {
  on_open(c);
  if (c->state == S_RUNNING && (mode == MODE_CONNECT || mode == MODE_IDLE || measuring)) fill(c);
  flush_out(c);
}

static void on_readable(conn_t *c);

// One step of the TLS handshake, whenever the socket is ready for what it waits for.
static void tls_step(conn_t *c) {
  char why[256] = "";
  int r = tls_handshake(c->ssl, why, sizeof why);
  if (r == 1) {
    if (!tls_session[0])
      snprintf(tls_session, sizeof tls_session, "%s %s", SSL_get_version(c->ssl),
               SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
    on_established(c);
    // Bytes the server sent right after its handshake, already read ahead by OpenSSL.
    if (c->fd >= 0 && c->ssl && SSL_has_pending(c->ssl)) on_readable(c);
    return;
  }
  if (r == IO_WANT_READ || r == IO_WANT_WRITE) {
    set_events(c, r == IO_WANT_WRITE);
    return;
  }
  if (tls_failures_told++ < 3) fprintf(stderr, "loadgen: TLS handshake failed: %s\n", why);
  lost(c, 0);
}

static void on_readable(conn_t *c) {
  if (c->state == S_TLS) {
    tls_step(c);
    return;
  }
  char tmp[65536];
  int got = 0, ended = 0;
  c->read_wants_write = 0;
  // Plain TCP: one read(2) per event. TLS: records until OpenSSL holds nothing more (what it has
  // read ahead is unseen by epoll).
  for (;;) {
    ssize_t n = io_read(c->fd, c->ssl, tmp, sizeof tmp);
    if (n > 0) {
      got = 1;
      buf_add(ws ? &c->raw : &c->in, tmp, (size_t)n);
      // Nothing left in OpenSSL: the rest is in the kernel, and epoll says when (no read(2) that
      // would only say EAGAIN).
      if (!c->ssl || !SSL_has_pending(c->ssl)) break;
      continue;
    }
    if (n == IO_WANT_WRITE) {
      c->read_wants_write = 1;
      set_events(c, 1);
    } else if (n == 0 || n == IO_ERROR) ended = 1;
    break;
  }
  if (!got) {
    if (ended) lost(c, 1);
    return;
  }
  if (ws) {
    if (c->state == S_HANDSHAKE) {
      char *end = memmem(c->raw.p, c->raw.len, "\r\n\r\n", 4);
      if (!end) goto check_end;
      if (c->raw.len < 12 || memcmp(c->raw.p, "HTTP/1.1 101", 12) != 0) {
        lost(c, 0);
        return;
      }
      buf_consume(&c->raw, (size_t)(end + 4 - c->raw.p));
      c->state = S_RUNNING;
      if (mode == MODE_CONNECT || mode == MODE_IDLE || measuring) fill(c);
    }
    if (take_frames(c) < 0) return;
  }
  if (take_replies(c) < 0) return;
  if (c->fd >= 0) flush_out(c);
check_end:
  // TLS: the server's last bytes and its close came in one event.
  if (ended && c->fd >= 0) lost(c, 1);
}

static void start_conn(conn_t *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    errors++;
    c->state = S_DONE;
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->state = S_CONNECTING;
  c->seq_sent = c->seq_recv = 0;
  c->inflight = 0;
  c->want_out = 1;
  c->started = now_ns();
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - conns)};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
    errors++;
    drop(c, S_DONE);
  }
}

static void on_writable(conn_t *c) {
  if (c->state == S_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      lost(c, 0);
      return;
    }
    if (!tls) {
      on_established(c);
      return;
    }
    c->ssl = SSL_new(tls_ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) || !SSL_set_tlsext_host_name(c->ssl, sni) ||
        (ca_file && !SSL_set1_host(c->ssl, sni))) {
      tls_clear();
      lost(c, 0);
      return;
    }
    SSL_set_connect_state(c->ssl);
    c->state = S_TLS;
  }
  if (c->state == S_TLS) {
    tls_step(c);
    return;
  }
  if (c->read_wants_write) {
    on_readable(c);
    if (c->fd < 0) return;
  }
  flush_out(c);
}

static void usage(void) {
  fprintf(stderr, "usage: loadgen --port P [--host 127.0.0.1] --mode rr|pipelined|connect|idle [--conns N]\n"
                  "               [--depth D] [--size L] [--seconds T] [--warmup W] [--ws] [--timeout S]\n"
                  "               [--tls [--sni localhost] [--ca FILE]]\n");
  exit(2);
}

static void raise_nofile(int want) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur >= (rlim_t)want) return;
  struct rlimit up = {(rlim_t)want, rl.rlim_max > (rlim_t)want ? rl.rlim_max : (rlim_t)want};
  if (setrlimit(RLIMIT_NOFILE, &up) != 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static uint64_t t_start;

static void print_result(double elapsed, int established) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               (double)ru.ru_stime.tv_usec / 1e6;
  double wall = (double)(now_ns() - t_start) / 1e9;
  printf("{\"mode\":\"%s\",\"transport\":\"%s\",\"tls\":%s,\"connections\":%d,\"depth\":%d,\"lineBytes\":%d,"
         "\"seconds\":%.3f,\"replies\":%llu,\"perSecond\":%.1f,\"p50Us\":%.1f,\"p99Us\":%.1f,\"maxUs\":%.1f,"
         "\"errors\":%llu,\"wrongReplies\":%llu,\"closedByPeer\":%llu,\"connected\":%llu,\"established\":%d,"
         "\"cpuSeconds\":%.3f,\"wallSeconds\":%.3f,\"tlsSession\":%s%s%s}\n",
         mode == MODE_RR          ? "rr"
         : mode == MODE_PIPELINED ? "pipelined"
         : mode == MODE_CONNECT   ? "connect"
                                  : "idle",
         ws ? "ws" : "tcp", tls ? "true" : "false", nconns, mode == MODE_PIPELINED ? depth : 1, the_line_len(), elapsed,
         (unsigned long long)replies, elapsed > 0 ? (double)replies / elapsed : 0.0, hist_pct(0.5) / 1000.0,
         hist_pct(0.99) / 1000.0, (double)hist_max / 1000.0, (unsigned long long)errors,
         (unsigned long long)wrong, (unsigned long long)closed_by_peer, (unsigned long long)connected,
         established, cpu, wall, tls_session[0] ? "\"" : "", tls_session[0] ? tls_session : "null",
         tls_session[0] ? "\"" : "");
  fflush(stdout);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--ws")) ws = 1;
    else if (!strcmp(a, "--tls")) tls = 1;
    else if (!v) usage();
    else if (!strcmp(a, "--sni")) sni = v, i++;
    else if (!strcmp(a, "--ca")) ca_file = v, i++;
    else if (!strcmp(a, "--port")) port = atoi(v), i++;
    else if (!strcmp(a, "--host")) host = v, i++;
    else if (!strcmp(a, "--conns")) nconns = atoi(v), i++;
    else if (!strcmp(a, "--depth")) depth = atoi(v), i++;
    else if (!strcmp(a, "--size")) line_size = atoi(v), i++;
    else if (!strcmp(a, "--seconds")) seconds = atof(v), i++;
    else if (!strcmp(a, "--warmup")) warmup = atof(v), i++;
    else if (!strcmp(a, "--timeout")) timeout_s = atof(v), i++;
    else if (!strcmp(a, "--mode")) {
      i++;
      if (!strcmp(v, "rr")) mode = MODE_RR;
      else if (!strcmp(v, "pipelined")) mode = MODE_PIPELINED;
      else if (!strcmp(v, "connect")) mode = MODE_CONNECT;
      else if (!strcmp(v, "idle")) mode = MODE_IDLE;
      else usage();
    } else usage();
  }
  if (port <= 0 || nconns <= 0 || depth <= 0 || depth > MAX_DEPTH || seconds <= 0) usage();
  signal(SIGPIPE, SIG_IGN);
  raise_nofile(nconns + 64);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "loadgen: --host must be an IPv4 address\n");
    return 2;
  }
  if (tls) {
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) {
      fprintf(stderr, "loadgen: cannot make a TLS context\n");
      return 2;
    }
    tls_ctx_common(tls_ctx);
    if (ca_file) {
      if (SSL_CTX_load_verify_locations(tls_ctx, ca_file, NULL) != 1) {
        fprintf(stderr, "loadgen: cannot read --ca %s\n", ca_file);
        return 2;
      }
      SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
    } else SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
  } else if (ca_file || strcmp(sni, "localhost") != 0) usage();
  make_templates();
  ep = epoll_create1(EPOLL_CLOEXEC);
  conns = calloc((size_t)nconns, sizeof(conn_t));
  for (int i = 0; i < nconns; i++) conns[i].fd = -1;
  struct epoll_event evs[512];
  uint64_t t0 = now_ns();
  t_start = t0;
  uint64_t deadline = t0 + (uint64_t)(timeout_s * 1e9);

  if (mode == MODE_IDLE) {
    // Opens the connections, at most 256 under way at a time.
    int next = 0, under_way = 0, settled = 0;
    while (settled < nconns && now_ns() < deadline) {
      while (next < nconns && under_way < 256) {
        start_conn(&conns[next++]);
        under_way++;
      }
      int n = epoll_wait(ep, evs, 512, 100);
      for (int i = 0; i < n; i++) {
        conn_t *c = &conns[evs[i].data.u32];
        if (c->fd < 0) continue;
        if (evs[i].events & (EPOLLOUT)) on_writable(c);
        if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
      }
      settled = 0;
      under_way = 0;
      for (int i = 0; i < next; i++) {
        if (conns[i].state == S_HOLDING || conns[i].state == S_DONE) settled++;
        else under_way++;
      }
    }
    int established = 0;
    for (int i = 0; i < nconns; i++) established += conns[i].state == S_HOLDING;
    double open_s = (double)(now_ns() - t0) / 1e9;
    printf("{\"event\":\"established\",\"established\":%d,\"seconds\":%.3f}\n", established, open_s);
    fflush(stdout);
    // Holds them until stdin says so (a line or its end) or `seconds` pass.
    struct epoll_event sev = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
    int watch_stdin = epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev) == 0;
    uint64_t hold_until = now_ns() + (uint64_t)(seconds * 1e9);
    int holding = 1;
    while (holding && now_ns() < hold_until) {
      int n = epoll_wait(ep, evs, 512, 100);
      for (int i = 0; i < n; i++) {
        if (evs[i].data.u32 == STDIN_TAG) {
          holding = 0;
          if (watch_stdin) epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
          continue;
        }
        conn_t *c = &conns[evs[i].data.u32];
        if (c->fd < 0) continue;
        if (evs[i].events & EPOLLOUT) on_writable(c);
        if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
      }
    }
    int still = 0;
    for (int i = 0; i < nconns; i++) still += conns[i].state == S_HOLDING;
    replies = (uint64_t)established;
    // Closed with a reset: ten thousand sockets in TIME_WAIT would slow what is measured next.
    struct linger reset = {1, 0};
    for (int i = 0; i < nconns; i++) {
      if (conns[i].fd >= 0) setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      drop(&conns[i], S_DONE);
    }
    (void)still;
    print_result(open_s, established);
    return 0;
  }

  // rr, pipelined, connect
  if (mode == MODE_CONNECT) {
    t_warm = t0 + (uint64_t)(warmup * 1e9);
    t_end = t_warm + (uint64_t)(seconds * 1e9);
    measuring = 1;
    for (int i = 0; i < nconns; i++) start_conn(&conns[i]);
  } else {
    for (int i = 0; i < nconns; i++) start_conn(&conns[i]);
    // Every connection open (and upgraded) before the clock starts.
    for (;;) {
      int pending = 0;
      for (int i = 0; i < nconns; i++)
        pending += conns[i].state == S_CONNECTING || conns[i].state == S_TLS || conns[i].state == S_HANDSHAKE;
      if (!pending || now_ns() > deadline) break;
      int n = epoll_wait(ep, evs, 512, 100);
      for (int i = 0; i < n; i++) {
        conn_t *c = &conns[evs[i].data.u32];
        if (c->fd < 0) continue;
        if (evs[i].events & EPOLLOUT) on_writable(c);
        if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
      }
    }
    uint64_t t = now_ns();
    t_warm = t + (uint64_t)(warmup * 1e9);
    t_end = t_warm + (uint64_t)(seconds * 1e9);
    measuring = 1;
    for (int i = 0; i < nconns; i++)
      if (conns[i].state == S_RUNNING) {
        fill(&conns[i]);
        flush_out(&conns[i]);
      }
  }
  for (;;) {
    uint64_t t = now_ns();
    if (t >= t_end) break;
    int wait_ms = (int)((t_end - t) / 1000000) + 1;
    int n = epoll_wait(ep, evs, 512, wait_ms);
    for (int i = 0; i < n; i++) {
      conn_t *c = &conns[evs[i].data.u32];
      if (c->fd < 0) continue;
      if (evs[i].events & EPOLLOUT) on_writable(c);
      if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
    }
  }
  for (int i = 0; i < nconns; i++) {
    drop(&conns[i], S_DONE);
    buf_free(&conns[i].raw);
    buf_free(&conns[i].in);
    buf_free(&conns[i].out);
  }
  print_result(seconds, 0);
  return 0;
}
