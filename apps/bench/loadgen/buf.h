// A growable byte buffer, shared by the load generator and the reference server.
#ifndef COMM_BENCH_BUF_H
#define COMM_BENCH_BUF_H
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
#endif
