// The reference server: the talk protocol (read a line, reply "You sent: '<line>'\n") in C, one
// thread, epoll, every line of one read answered in one write. It is the fastest server this
// machine can offer the load generator: if the load generator drives it faster than it drives the
// fastest backend, the load generator is not what limits the backends' figures.
//
// A connection whose first bytes are "GET " speaks comm-stream instead (the byte stream in binary
// WebSocket messages, as @comm/uws): the upgrade is answered for the load generator's fixed
// Sec-WebSocket-Key only (this server has no SHA-1), client frames are unmasked, replies go out as
// one binary message per read, an empty message (FIN) is answered with one and a close.
//
// --spin polls epoll without sleeping: its CPU never idles, so waking it costs nothing. On a VM
// whose idle vCPUs halt (waking one takes an exit to the host) that is worth a factor of two on
// loopback: the bench runs the reference so, to show what the load generator can drive at most.
//
// --tls-cert FILE --tls-key FILE: the same over TLS (OpenSSL, non-blocking), for the TLS rows.
//
//   refserver [--port 0] [--backlog 4096] [--spin] [--tls-cert FILE --tls-key FILE]
//   prints "reference server listening on 127.0.0.1 port N"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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
#include <unistd.h>

#include "buf.h"
#include "tls.h"

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" // RFC 6455's example: the accept of WS_KEY

typedef struct {
  int open;
  SSL *ssl;        // --tls-cert: the connection's TLS
  int handshaking; // TLS: the handshake is not done yet
  int write_wants_read;
  int kind; // 0 unknown yet, 1 tcp, 2 ws before upgrade, 3 ws
  buf_t in;   // tcp: partial line; ws: raw frames
  buf_t line; // ws: partial line (unmasked stream)
  buf_t out;
  size_t out_off;
  int want_out;
  int closing;
} conn_t;

static int ep;
static conn_t *conns;
static int max_fd;
static buf_t reply;
static SSL_CTX *tls_ctx;


static void close_conn(int fd) {
  conn_t *c = &conns[fd];
  if (c->ssl) SSL_free(c->ssl);
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  free(c->in.p);
  free(c->line.p);
  free(c->out.p);
  memset(c, 0, sizeof *c);
}

static void set_out(int fd, int on) {
  conn_t *c = &conns[fd];
  if (c->want_out == on) return;
  c->want_out = on;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

// Sends `data` now, keeping what the socket does not take; returns -1 if the connection is gone.
static int send_bytes(int fd, const char *data, size_t n) {
  conn_t *c = &conns[fd];
  if (c->out.len > c->out_off) {
    buf_add(&c->out, data, n);
    return 0;
  }
  c->out.len = c->out_off = 0;
  while (n > 0) {
    ssize_t w = io_write(fd, c->ssl, data, n);
    if (w < 0) {
      if (w == IO_AGAIN || w == IO_WANT_READ) {
        buf_add(&c->out, data, n);
        if (w == IO_AGAIN) set_out(fd, 1);
        else c->write_wants_read = 1;
        return 0;
      }
      close_conn(fd);
      return -1;
    }
    data += w;
    n -= (size_t)w;
  }
  return 0;
}

// Appends the replies to the complete lines of `b` to `reply`, keeps the partial line in `b`.
static void answer_lines(buf_t *b) {
  size_t at = 0;
  for (;;) {
    char *nl = memchr(b->p + at, '\n', b->len - at);
    if (!nl) break;
    size_t len = (size_t)(nl - (b->p + at));
    buf_add(&reply, "You sent: '", 11);
    buf_add(&reply, b->p + at, len);
    buf_add(&reply, "'\n", 2);
    at += len + 1;
  }
  buf_consume(b, at);
}

static int ws_send(int fd, int opcode, const char *payload, size_t n) {
  unsigned char h[10];
  int hl = 0;
  h[hl++] = (unsigned char)(0x80 | opcode);
  if (n < 126) h[hl++] = (unsigned char)n;
  else if (n < 65536) {
    h[hl++] = 126;
    h[hl++] = (unsigned char)(n >> 8);
    h[hl++] = (unsigned char)n;
  } else {
    h[hl++] = 127;
    for (int i = 7; i >= 0; i--) h[hl++] = (unsigned char)((uint64_t)n >> (8 * i));
  }
  buf_t frame = {0};
  buf_add(&frame, h, (size_t)hl);
  buf_add(&frame, payload, n);
  int r = send_bytes(fd, frame.p, frame.len);
  free(frame.p);
  return r;
}

static void on_ws(int fd) {
  conn_t *c = &conns[fd];
  size_t at = 0;
  int fin = 0, close_frame = 0;
  reply.len = 0;
  for (;;) {
    int op;
    unsigned char *pl;
    uint64_t len;
    size_t size = ws_frame((unsigned char *)c->in.p + at, c->in.len - at, &op, &pl, &len);
    if (size == 0) break;
    if (op <= 2) {
      if (len == 0 && op != 0) fin = 1;
      else buf_add(&c->line, pl, (size_t)len);
    } else if (op == 8) close_frame = 1;
    at += size;
  }
  buf_consume(&c->in, at);
  answer_lines(&c->line);
  if (reply.len > 0 && ws_send(fd, 2, reply.p, reply.len) < 0) return;
  if (close_frame) {
    close_conn(fd);
    return;
  }
  if (fin) {
    if (ws_send(fd, 2, "", 0) < 0) return;
    if (ws_send(fd, 8, "\x03\xe8", 2) < 0) return;
  }
}

static void on_writable(int fd);

// The bytes of one read: answered at once.
static void on_bytes(int fd, const char *tmp, size_t n) {
  conn_t *c = &conns[fd];
  if (c->kind == 0) c->kind = (n >= 4 && memcmp(tmp, "GET ", 4) == 0) ? 2 : 1;
  if (c->kind == 1) {
    buf_add(&c->in, tmp, n);
    reply.len = 0;
    answer_lines(&c->in);
    if (reply.len > 0) send_bytes(fd, reply.p, reply.len);
    return;
  }
  buf_add(&c->in, tmp, n);
  if (c->kind == 2) {
    char *end = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
    if (!end) return;
    if (!memmem(c->in.p, (size_t)(end - c->in.p), WS_KEY, strlen(WS_KEY))) {
      const char *no = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      send_bytes(fd, no, strlen(no));
      close_conn(fd);
      return;
    }
    buf_consume(&c->in, (size_t)(end + 4 - c->in.p));
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: " WS_ACCEPT "\r\nSec-WebSocket-Protocol: comm-stream\r\n\r\n";
    if (send_bytes(fd, ok, strlen(ok)) < 0) return;
    c->kind = 3;
  }
  on_ws(fd);
}

// TLS: one step of the handshake; 1 once it is done, 0 while it waits, -1 when it failed (closed).
static int tls_step(int fd) {
  conn_t *c = &conns[fd];
  char why[256];
  int r = tls_handshake(c->ssl, why, sizeof why);
  if (r == 1) {
    c->handshaking = 0;
    set_out(fd, c->out.len > c->out_off);
    return 1;
  }
  if (r == IO_WANT_READ || r == IO_WANT_WRITE) {
    set_out(fd, r == IO_WANT_WRITE);
    return 0;
  }
  close_conn(fd);
  return -1;
}

static void on_readable(int fd) {
  conn_t *c = &conns[fd];
  if (c->handshaking && tls_step(fd) <= 0) return;
  char tmp[65536];
  // Plain TCP: one read(2) per event. TLS: records until OpenSSL holds nothing more (what it has
  // read ahead is unseen by epoll).
  for (;;) {
    ssize_t n = io_read(fd, c->ssl, tmp, sizeof tmp);
    if (n == IO_AGAIN) break;
    if (n == IO_WANT_WRITE) {
      set_out(fd, 1);
      break;
    }
    if (n <= 0) {
      close_conn(fd);
      return;
    }
    on_bytes(fd, tmp, (size_t)n);
    if (!c->open) return;
    if (!c->ssl || !SSL_has_pending(c->ssl)) break;
  }
  if (c->write_wants_read) {
    c->write_wants_read = 0;
    on_writable(fd);
  }
}

static void on_writable(int fd) {
  conn_t *c = &conns[fd];
  if (c->handshaking) {
    if (tls_step(fd) == 1) on_readable(fd);
    return;
  }
  while (c->out_off < c->out.len) {
    ssize_t w = io_write(fd, c->ssl, c->out.p + c->out_off, c->out.len - c->out_off);
    if (w < 0) {
      if (w == IO_AGAIN) return;
      if (w == IO_WANT_READ) {
        c->write_wants_read = 1;
        return;
      }
      close_conn(fd);
      return;
    }
    c->out_off += (size_t)w;
  }
  c->out.len = c->out_off = 0;
  set_out(fd, 0);
}

int main(int argc, char **argv) {
  int port = 0, backlog = 4096, spin = 0;
  const char *cert = NULL, *key = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--spin")) spin = 1;
    else if (i + 1 < argc && !strcmp(argv[i], "--port")) port = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--backlog")) backlog = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--tls-cert")) cert = argv[++i];
    else if (i + 1 < argc && !strcmp(argv[i], "--tls-key")) key = argv[++i];
    else {
      fprintf(stderr, "usage: refserver [--port 0] [--backlog 4096] [--spin] [--tls-cert FILE --tls-key FILE]\n");
      return 2;
    }
  }
  if (!cert != !key) {
    fprintf(stderr, "refserver: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (cert) {
    tls_ctx = SSL_CTX_new(TLS_server_method());
    if (!tls_ctx || SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1) {
      fprintf(stderr, "refserver: cannot use --tls-cert %s --tls-key %s\n", cert, key);
      return 2;
    }
    tls_ctx_common(tls_ctx);
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 65536) {
    struct rlimit up = {65536, rl.rlim_max > 65536 ? rl.rlim_max : 65536};
    if (setrlimit(RLIMIT_NOFILE, &up) != 0) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  max_fd = (int)(rl.rlim_cur > 1048576 ? 1048576 : rl.rlim_cur);
  conns = calloc((size_t)max_fd, sizeof(conn_t));
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, backlog) < 0) {
    perror("refserver");
    return 1;
  }
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr *)&a, &al);
  printf("reference server%s listening on 127.0.0.1 port %d\n", tls_ctx ? " tls" : "", ntohs(a.sin_port));
  fflush(stdout);
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
  struct epoll_event evs[512];
  for (;;) {
    int n = epoll_wait(ep, evs, 512, spin ? 0 : -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        for (;;) {
          int cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0) break;
          if (cfd >= max_fd) {
            close(cfd);
            continue;
          }
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[cfd].open = 1;
          if (tls_ctx) {
            conns[cfd].ssl = SSL_new(tls_ctx);
            if (!conns[cfd].ssl || !SSL_set_fd(conns[cfd].ssl, cfd)) {
              tls_clear();
              close_conn(cfd);
              continue;
            }
            SSL_set_accept_state(conns[cfd].ssl);
            conns[cfd].handshaking = 1;
          }
          struct epoll_event ev = {.events = EPOLLIN, .data.fd = cfd};
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
        }
        continue;
      }
      if (!conns[fd].open) continue;
      if (evs[i].events & EPOLLOUT) on_writable(fd);
      if (conns[fd].open && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(fd);
    }
  }
}
