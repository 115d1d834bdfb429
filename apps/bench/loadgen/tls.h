// Reads and writes on a connection that is plain TCP (ssl NULL) or TLS (OpenSSL, non-blocking),
// with one result convention, shared by the load generator and the reference server.
#ifndef COMM_BENCH_TLS_H
#define COMM_BENCH_TLS_H
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

// What io_read and io_write return besides a byte count (io_read: 0 is the end of the stream,
// a FIN or a TLS close_notify).
enum { IO_AGAIN = -1, IO_WANT_WRITE = -2, IO_WANT_READ = -3, IO_ERROR = -4 };

// Forgets the errors OpenSSL queued for this thread: SSL_get_error of the next call reads them.
static void tls_clear(void) { ERR_clear_error(); }

static ssize_t tls_result(SSL *ssl, int r) {
  switch (SSL_get_error(ssl, r)) {
  case SSL_ERROR_WANT_READ: return IO_WANT_READ;
  case SSL_ERROR_WANT_WRITE: return IO_WANT_WRITE;
  case SSL_ERROR_ZERO_RETURN: return 0;
  default: tls_clear(); return IO_ERROR;
  }
}

// Up to `n` bytes: >0 read, 0 end of stream, IO_AGAIN nothing now (wait for readable),
// IO_WANT_WRITE (TLS: wait for writable, then read again), IO_ERROR.
static ssize_t io_read(int fd, SSL *ssl, char *p, size_t n) {
  if (!ssl) {
    ssize_t r = read(fd, p, n);
    if (r >= 0) return r;
    return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN : IO_ERROR;
  }
  int r = SSL_read(ssl, p, n > INT_MAX ? INT_MAX : (int)n);
  if (r > 0) return r;
  ssize_t why = tls_result(ssl, r);
  return why == IO_WANT_READ ? IO_AGAIN : why;
}

// Up to `n` bytes: >0 written, IO_AGAIN (wait for writable), IO_WANT_READ (TLS: wait for
// readable, then write again), IO_ERROR. A TLS write that did not finish must be retried with
// the same bytes (the connection has SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: they may have moved).
static ssize_t io_write(int fd, SSL *ssl, const char *p, size_t n) {
  if (!ssl) {
    ssize_t r = write(fd, p, n);
    if (r >= 0) return r;
    return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN : IO_ERROR;
  }
  int r = SSL_write(ssl, p, n > INT_MAX ? INT_MAX : (int)n);
  if (r > 0) return r;
  ssize_t why = tls_result(ssl, r);
  return why == IO_WANT_WRITE ? IO_AGAIN : why == 0 ? IO_ERROR : why;
}

// One step of a non-blocking handshake: 1 done, IO_WANT_READ, IO_WANT_WRITE, or IO_ERROR (then
// `why` holds OpenSSL's reason).
static int tls_handshake(SSL *ssl, char *why, size_t why_len) {
  int r = SSL_do_handshake(ssl);
  if (r == 1) return 1;
  int e = SSL_get_error(ssl, r);
  if (e == SSL_ERROR_WANT_READ) return IO_WANT_READ;
  if (e == SSL_ERROR_WANT_WRITE) return IO_WANT_WRITE;
  unsigned long code = ERR_peek_last_error();
  if (code) ERR_error_string_n(code, why, why_len);
  else if (e == SSL_ERROR_SYSCALL) snprintf(why, why_len, "the peer closed the connection during the handshake");
  else snprintf(why, why_len, "SSL_get_error %d", e);
  if (e == SSL_ERROR_SSL) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) snprintf(why, why_len, "certificate verification: %s", X509_verify_cert_error_string(v));
  }
  tls_clear();
  return IO_ERROR;
}

// What every TLS connection of the bench has: partial writes, a write buffer that may move
// between a write that must be retried and its retry, an end of stream without close_notify read
// as an end of stream, and read-ahead: OpenSSL reads what the socket has in one read(2), not a
// record's header and then its body. What it has read ahead is invisible to epoll, so a reader
// must call SSL_read again while SSL_has_pending says it holds bytes.
static void tls_ctx_common(SSL_CTX *ctx) {
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
}
#endif
