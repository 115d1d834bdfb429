// A growable byte buffer and a WebSocket frame parser, shared by the load generator and the
// reference server.
#ifndef COMM_BENCH_BUF_H
#define COMM_BENCH_BUF_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *p;
  size_t len, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t more) {
  if (b->len + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more) cap *= 2;
  b->p = realloc(b->p, cap);
  if (!b->p) {
    perror("realloc");
    exit(3);
  }
  b->cap = cap;
}

static void buf_add(buf_t *b, const void *data, size_t n) {
  buf_reserve(b, n);
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void buf_consume(buf_t *b, size_t n) {
  if (n >= b->len) b->len = 0;
  else {
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
  }
}

static void buf_free(buf_t *b) __attribute__((unused));
static void buf_free(buf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
// One WebSocket frame at the start of `h` (`avail` bytes): sets its opcode and its payload,
// unmasked in place. Returns the frame's whole size, or 0 while it is incomplete.
static size_t ws_frame(unsigned char *h, size_t avail, int *op, unsigned char **payload, uint64_t *len) {
  if (avail < 2) return 0;
  uint64_t n = h[1] & 127;
  size_t hl = 2;
  if (n == 126) {
    if (avail < 4) return 0;
    n = ((uint64_t)h[2] << 8) | h[3];
    hl = 4;
  } else if (n == 127) {
    if (avail < 10) return 0;
    n = 0;
    for (int i = 0; i < 8; i++) n = (n << 8) | h[2 + i];
    hl = 10;
  }
  unsigned char mk[4] = {0, 0, 0, 0};
  int masked = h[1] & 0x80;
  if (masked) {
    if (avail < hl + 4) return 0;
    memcpy(mk, h + hl, 4);
    hl += 4;
  }
  if (avail < hl + n) return 0;
  *op = h[0] & 15;
  *payload = h + hl;
  *len = n;
  if (masked)
    for (uint64_t i = 0; i < n; i++) h[hl + i] ^= mk[i & 3];
  return hl + (size_t)n;
}

#endif
