#!/usr/bin/env python3
"""Hostile clients for the talk server (send a line, get back "You sent: '<line>'\n").

Independent of the project: plain TCP, or comm-stream (the byte stream in binary WebSocket
messages, @comm/uws) with ws=1, spoken here from the RFC 6455 framing.

usage: hostile.py SCENARIO PORT WS PARAMS_JSON

Progress goes to stderr; markers (`HOLDING ...`, `LOADED`) and the last line
`RESULT {json}` go to stdout. The result has: ok (bool: the client saw what it should),
correct / total (replies checked), note (a short text), and scenario figures.
"""

import asyncio
import json
import os
import random
import resource
import socket
import struct
import sys
import time

HOST = '127.0.0.1'
WS_REQUEST = (
    'GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'
    'Sec-WebSocket-Protocol: comm-stream\r\n\r\n'
)
MAX_MESSAGE = 64 * 1024  # comm-stream: a client's messages carry at most 64 KiB


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def log(text):
    print(f'hostile.py: {text}', file=sys.stderr, flush=True)


def reply_for(line: bytes) -> bytes:
    """What the talk server sends back for one line (without its newline): a CR before LF is not part of it."""
    if line.endswith(b'\r'):
        line = line[:-1]
    text = line.decode('utf-8', errors='replace')
    return f"You sent: '{text}'\n".encode('utf-8')


def ws_frame(payload: bytes, opcode: int = 2) -> bytes:
    """One masked client frame. The mask key is zero (legal: masking then changes no byte)."""
    n = len(payload)
    if n < 126:
        head = struct.pack('!BB', 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack('!BBH', 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack('!BBQ', 0x80 | opcode, 0x80 | 127, n)
    return head + b'\0\0\0\0' + payload


def ws_frames(data: bytes) -> bytes:
    if not data:
        return b''
    return b''.join(ws_frame(data[i : i + MAX_MESSAGE]) for i in range(0, len(data), MAX_MESSAGE))


class Conn:
    """One client connection (asyncio): the stream's bytes over TCP, or over comm-stream."""

    def __init__(self, port, ws):
        self.port = port
        self.ws = ws
        self.reader = None
        self.writer = None
        self.inbuf = bytearray()  # stream bytes received, not yet taken
        self.raw = bytearray()  # ws: frame bytes received
        self.eof = False
        self.error = None  # how the connection ended, if not by a clean EOF

    async def open(self, timeout=10.0):
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, self.port, limit=1 << 20), timeout
        )
        if self.ws:
            self.writer.write(WS_REQUEST.format(host=HOST, port=self.port).encode())
            head = await asyncio.wait_for(self.reader.readuntil(b'\r\n\r\n'), timeout)
            if not head.startswith(b'HTTP/1.1 101'):
                raise ConnectionError(f'upgrade refused: {head[:40]!r}')
        return self

    def sock(self):
        return self.writer.get_extra_info('socket')

    def send(self, data: bytes):
        self.writer.write(ws_frames(data) if self.ws else data)

    async def drain(self, timeout=10.0):
        await asyncio.wait_for(self.writer.drain(), timeout)

    def fin(self):
        """The end of what this client sends; it goes on reading."""
        if self.ws:
            self.writer.write(ws_frame(b''))
        else:
            self.writer.write_eof()

    def reset(self):
        """Close with SO_LINGER 0: a RST instead of a FIN."""
        try:
            self.sock().setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        except OSError:
            pass
        self.writer.transport.abort()

    def close(self):
        if self.writer is not None:
            self.writer.close()

    def _take_frames(self):
        at = 0
        raw = self.raw
        while True:
            avail = len(raw) - at
            if avail < 2:
                break
            b0, b1 = raw[at], raw[at + 1]
            op, n, hl = b0 & 15, b1 & 127, 2
            if n == 126:
                if avail < 4:
                    break
                n, hl = struct.unpack_from('!H', raw, at + 2)[0], 4
            elif n == 127:
                if avail < 10:
                    break
                n, hl = struct.unpack_from('!Q', raw, at + 2)[0], 10
            masked = b1 & 0x80
            if masked:
                hl += 4
            if avail < hl + n:
                break
            payload = bytes(raw[at + hl : at + hl + n])
            if masked:
                key = raw[at + hl - 4 : at + hl]
                payload = bytes(c ^ key[i & 3] for i, c in enumerate(payload))
            at += hl + n
            if op in (0, 1, 2):
                if n == 0 and op != 0:
                    self.eof = True  # the server's FIN
                else:
                    self.inbuf += payload
            elif op == 8:
                self.eof = True
                self.error = 'close frame' + (f' {struct.unpack("!H", payload[:2])[0]}' if n >= 2 else '')
            elif op == 9:
                try:
                    self.writer.write(ws_frame(payload, 10))
                except Exception:
                    pass
        del raw[:at]

    async def _fill(self):
        try:
            data = await self.reader.read(1 << 16)
        except (ConnectionError, OSError) as e:
            self.eof = True
            self.error = type(e).__name__
            return
        if not data:
            self.eof = True
            return
        if self.ws:
            self.raw += data
            self._take_frames()
        else:
            self.inbuf += data

    async def readline(self, timeout=10.0):
        """The next line with its newline; what is left (maybe b'') at the end of the stream."""

        async def go():
            while True:
                i = self.inbuf.find(b'\n')
                if i >= 0:
                    line = bytes(self.inbuf[: i + 1])
                    del self.inbuf[: i + 1]
                    return line
                if self.eof:
                    rest = bytes(self.inbuf)
                    self.inbuf.clear()
                    return rest
                await self._fill()

        return await asyncio.wait_for(go(), timeout)

    async def read_some(self, timeout=10.0):
        """At least one byte of the stream, or b'' at its end."""

        async def go():
            while not self.inbuf and not self.eof:
                await self._fill()
            data = bytes(self.inbuf)
            self.inbuf.clear()
            return data

        return await asyncio.wait_for(go(), timeout)

    async def wait_eof(self, timeout=10.0):
        """Reads (and drops) until the end of the stream; True if it came within `timeout`."""

        async def go():
            while not self.eof:
                self.inbuf.clear()
                await self._fill()

        try:
            await asyncio.wait_for(go(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


async def round_trip(conn, line: bytes, timeout=10.0):
    conn.send(line + b'\n')
    got = await conn.readline(timeout)
    return got == reply_for(line), got


async def probe(port, ws, tag='fresh', timeout=10.0):
    """A fresh client: connect, one round trip, close. (ok, detail)"""
    conn = Conn(port, ws)
    try:
        await conn.open(timeout)
        ok, got = await round_trip(conn, f'{tag} {os.getpid()}'.encode(), timeout)
        return ok, ('' if ok else f'fresh client got {got[:60]!r}')
    except Exception as e:
        return False, f'fresh client: {type(e).__name__} {e}'.strip()
    finally:
        conn.close()


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


async def bounded(n, concurrency, fn):
    """Runs fn(i) for i < n, at most `concurrency` at once; the results in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i):
        async with sem:
            return await fn(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


# --- the scenarios ---------------------------------------------------------------------------


async def s_idle(port, ws, p):
    """n connections each send one line and get the reply, then stay; a fresh client is served meanwhile."""
    n = p['n']
    conns = []

    async def one(i):
        c = Conn(port, ws)
        try:
            await c.open(30)
            ok, _ = await round_trip(c, f'idle {i}'.encode(), 30)
            conns.append(c)
            return ok
        except Exception:
            c.close()
            return False

    t0 = time.monotonic()
    results = await bounded(n, 200, one)
    correct = sum(results)
    log(f'{correct}/{n} idle connections served in {time.monotonic() - t0:.1f} s')
    fresh_ok, detail = await probe(port, ws, 'fresh-while-idle')
    await asyncio.sleep(p.get('hold', 1))
    alive = 0
    for c in conns:  # still open: no EOF from the server while idle
        if not c.eof and not c.reader.at_eof():
            alive += 1
        c.close()
    await asyncio.sleep(0.2)
    note = f'{alive} still open; fresh client while idle: {"ok" if fresh_ok else detail}'
    return dict(ok=correct == n and fresh_ok and alive == correct, correct=correct + fresh_ok, total=n + 1, note=note)


def blocking_connects(port, n, reset):
    """n connections one after another, each closed right after connect (RST with SO_LINGER 0 if `reset`)."""
    done = failed = 0
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect((HOST, port))
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            done += 1
        except OSError:
            failed += 1
        finally:
            s.close()
    return done, failed


async def s_connects(port, ws, p, reset):
    loop = asyncio.get_running_loop()
    n = p['n']
    # Two threads: a burst faster than one client, like a scan.
    halves = await asyncio.gather(
        loop.run_in_executor(None, blocking_connects, port, n // 2, reset),
        loop.run_in_executor(None, blocking_connects, port, n - n // 2, reset),
    )
    done = sum(h[0] for h in halves)
    failed = sum(h[1] for h in halves)
    how = 'reset' if reset else 'closed'
    note = f'{done} connected and {how}' + (f', {failed} connects failed' if failed else '')
    if ws:
        note += ' (TCP level, before the upgrade)'
    return dict(ok=failed == 0, correct=0, total=0, note=note)


async def s_slowloris(port, ws, p):
    """n clients send one byte a second for `seconds`; a probe does round trips meanwhile."""
    n, seconds = p['n'], p['seconds']
    conns = []

    async def opener(i):
        c = Conn(port, ws)
        try:
            await c.open(30)
            conns.append((i, c))
        except Exception:
            c.close()

    await bounded(n, 200, opener)
    stop = time.monotonic() + seconds

    async def slow_checked(i, c):
        sent = bytearray()
        text = f'slow{i:04d}-' + 'x' * 64
        k = 0
        try:
            await asyncio.sleep(random.random())
            while time.monotonic() < stop:
                b = text[k % len(text)].encode()
                c.send(b)
                sent += b
                k += 1
                await asyncio.sleep(1)
            c.send(b'\n')
            got = await c.readline(15)
            return got == reply_for(bytes(sent))
        except Exception:
            return False

    latencies = []
    probe_error = None

    async def prober():
        nonlocal probe_error
        c = Conn(port, ws)
        try:
            await c.open(10)
            k = 0
            while time.monotonic() < stop:
                t = time.perf_counter()
                ok, got = await round_trip(c, f'probe {k}'.encode(), 10)
                latencies.append((time.perf_counter() - t) * 1000)
                if not ok:
                    probe_error = f'probe got {got[:40]!r}'
                    return
                k += 1
                await asyncio.sleep(0.02)
        except Exception as e:
            probe_error = f'probe: {type(e).__name__}'
        finally:
            c.close()

    results = await asyncio.gather(prober(), *(slow_checked(i, c) for i, c in conns))
    for _, c in conns:
        c.close()
    slow_ok = sum(1 for r in results[1:] if r)
    p99 = percentile(latencies, 99)
    limit = p['p99ms']
    ok = probe_error is None and p99 is not None and p99 < limit and slow_ok == n
    note = f'probe p99 {p99:.1f} ms (max {max(latencies):.1f}, {len(latencies)} round trips, limit {limit} ms)' if latencies else 'no probe round trip'
    if probe_error:
        note += f'; {probe_error}'
    if len(conns) < n:
        note += f'; {n - len(conns)} could not connect'
    return dict(ok=ok, correct=slow_ok + len(latencies), total=n + len(latencies), note=note, p99=p99)


async def s_no_reader(port, ws, p):
    """Sends `lines` lines and never reads the replies; stops when the server stops taking them."""
    n = p['lines']
    c = Conn(port, ws)
    await c.open(10)
    c.writer.transport.pause_reading()  # this client never reads
    chunk_lines = 4096
    sent_lines = 0
    outcome = 'all sent'
    t0 = time.monotonic()
    try:
        while sent_lines < n:
            k = min(chunk_lines, n - sent_lines)
            c.send(b''.join(b'line %07d\n' % (sent_lines + j) for j in range(k)))
            sent_lines += k
            await c.drain(p.get('stall', 3))
    except asyncio.TimeoutError:
        outcome = 'the server stopped reading (backpressure)'
    except (ConnectionError, OSError) as e:
        outcome = f'the server closed the connection ({type(e).__name__})'
    elapsed = time.monotonic() - t0
    print('LOADED', flush=True)
    await asyncio.sleep(p.get('hold', 2))  # the server holds what it holds: let its RSS be sampled
    c.writer.transport.resume_reading()
    closed = await c.wait_eof(1.0)  # the replies, or the end if the server closed the connection
    c.reset()
    note = f'{sent_lines} of {n} lines sent in {elapsed:.1f} s: {outcome}'
    if closed:
        note += '; the server closed the connection' + (f' ({c.error})' if c.error else '')
    return dict(ok=True, correct=0, total=0, note=note, sent=sent_lines)


async def s_long_line(port, ws, p):
    """One line of `mib` MiB without a newline: the server must close the connection or reject the line."""
    total = p['mib'] * 1024 * 1024
    c = Conn(port, ws)
    await c.open(10)
    c.writer.transport.pause_reading()
    chunk = b'x' * (256 * 1024)
    sent = 0
    outcome = None
    try:
        while sent < total:
            c.send(chunk)
            sent += len(chunk)
            await c.drain(10)
        c.send(b'\n')
        await c.drain(10)
    except asyncio.TimeoutError:
        outcome = 'stalled'
    except (ConnectionError, OSError) as e:
        outcome = f'closed while sending ({type(e).__name__})'
    c.writer.transport.resume_reading()
    if outcome == 'stalled':
        ok = False
        note = f'the server stopped reading after {sent >> 20} MiB and neither closed nor answered in 10 s'
    elif outcome is not None:
        ok, note = True, f'{outcome} after {sent >> 20} MiB'
    else:
        try:
            got = await c.readline(10)
            if got == b'' or c.eof:
                ok, note = True, f'closed after the whole {p["mib"]} MiB' + (f' ({c.error})' if c.error else '')
            elif len(got) > 1024 * 1024:
                ok, note = False, f'the server echoed a {len(got) >> 20} MiB line'
            else:
                ok, note = True, f'rejected: {got[:60]!r}'
        except asyncio.TimeoutError:
            ok, note = False, 'after the whole line and its newline, no answer and no close in 10 s'
    c.close()
    return dict(ok=ok, correct=int(ok), total=1, note=note)


async def s_garbage(port, ws, p):
    """Binary garbage, NUL bytes, invalid UTF-8, a BOM, CR-only line ends."""
    rng = random.Random(8)
    results = []

    async def case(name, payload, lines, expect_after=None):
        c = Conn(port, ws)
        try:
            await c.open(10)
            c.send(payload)
            await c.drain(10)
            if expect_after is not None:
                # garbage: read replies until the sane line's comes back
                want = reply_for(expect_after)
                got = None
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    got = await c.readline(deadline - time.monotonic())
                    if got == want or got == b'':
                        break
                results.append((name, got == want, f'got {got[:40]!r}' if got != want else ''))
            else:
                for line in lines:
                    got = await c.readline(10)
                    want = reply_for(line)
                    if got != want:
                        results.append((name, False, f'sent {line[:30]!r} got {got[:50]!r}'))
                        break
                else:
                    results.append((name, True, ''))
        except Exception as e:
            results.append((name, False, f'{type(e).__name__} {e}'.strip()[:60]))
        finally:
            c.close()

    garbage = bytes(rng.getrandbits(8) for _ in range(p.get('garbage', 256 * 1024)))
    await case('garbage', garbage + b'\nsane after garbage\n', [], b'sane after garbage')
    await case('nul', b'a\0b\0\0\nsecond\0\n', [b'a\0b\0\0', b'second\0'])
    await case('utf8', b'ab\xffcd\xc3\nx\xed\xa0\x80y\n\xf0\x9f\x98\n', [b'ab\xffcd\xc3', b'x\xed\xa0\x80y', b'\xf0\x9f\x98'])
    await case('bom', b'\xef\xbb\xbfhello\n\xef\xbb\xbfagain\n', [b'\xef\xbb\xbfhello', b'\xef\xbb\xbfagain'])
    await case('cr-only', b'one\rtwo\rthree\r\nfour\r\n', [b'one\rtwo\rthree\r', b'four\r'])

    # A character split across two sends.
    c = Conn(port, ws)
    try:
        await c.open(10)
        c.send(b'caf\xc3')
        await c.drain(10)
        await asyncio.sleep(0.05)
        c.send(b'\xa9 \xe2\x82')
        await c.drain(10)
        await asyncio.sleep(0.05)
        c.send(b'\xac\n')
        got = await c.readline(10)
        want = reply_for(b'caf\xc3\xa9 \xe2\x82\xac')
        results.append(('split-utf8', got == want, '' if got == want else f'got {got[:40]!r}'))
    except Exception as e:
        results.append(('split-utf8', False, type(e).__name__))
    finally:
        c.close()

    if ws:
        # Garbage where the server expects an HTTP upgrade, then garbage frames after it.
        for payload in (garbage[:4096], b'GET / HTTP/1.1\r\n' + garbage[:2048]):
            s = socket.create_connection((HOST, port), 10)
            try:
                s.sendall(payload)
                s.settimeout(2)
                try:
                    s.recv(4096)
                except OSError:
                    pass
            finally:
                s.close()
        c = Conn(port, ws)
        try:
            await c.open(10)
            c.writer.write(b'\x8f\xff' + garbage[:2048])  # an invalid opcode with a huge length
            await c.drain(5)
            closed = await c.wait_eof(5)
            results.append(('ws-garbage-frames', closed, '' if closed else 'connection not closed in 5 s'))
        except Exception as e:
            results.append(('ws-garbage-frames', True, f'closed: {type(e).__name__}'))
        finally:
            c.close()

    correct = sum(1 for r in results if r[1])
    bad = [f'{name}: {why}' for name, ok, why in results if not ok]
    note = 'all echoed as the contract says' if not bad else '; '.join(bad)
    return dict(ok=not bad, correct=correct, total=len(results), note=note)


async def s_reset_mid_reply(port, ws, p):
    """n clients each send many lines, then reset while the replies stream back."""
    n, lines = p['n'], p.get('lines', 2000)
    payload = b''.join(b'row %05d ........................................\n' % j for j in range(lines))

    async def one(i):
        c = Conn(port, ws)
        try:
            await c.open(10)
            c.send(payload)
            got = bytearray()
            while len(got) < 4096:
                data = await c.read_some(10)
                if not data:
                    break
                got += data
            first = bytes(got).split(b'\n', 1)[0] + b'\n'
            ok = first == reply_for(payload.split(b'\n', 1)[0])
            c.reset()
            return ok
        except Exception:
            c.close()
            return False

    results = await bounded(n, p.get('concurrency', 10), one)
    correct = sum(results)
    return dict(ok=correct == n, correct=correct, total=n, note=f'{n} resets while {lines} replies streamed')


async def s_half_close(port, ws, p):
    ok_count = 0
    notes = []
    for i in range(p.get('n', 3)):
        c = Conn(port, ws)
        try:
            await c.open(10)
            line = f'half-close {i}'.encode()
            c.send(line + b'\n')
            c.fin()
            got = await c.readline(10)
            eof = await c.wait_eof(10)
            if got == reply_for(line) and eof:
                ok_count += 1
            else:
                notes.append(f'got {got[:40]!r}, eof {eof}')
        except Exception as e:
            notes.append(f'{type(e).__name__} {e}'.strip()[:60])
        finally:
            c.close()
    n = p.get('n', 3)
    return dict(ok=ok_count == n, correct=ok_count, total=n, note='; '.join(notes[:2]) or 'reply after FIN, then EOF')


async def s_emfile(port, ws, p):
    """n clients connect and hold; the orchestrator measures the server's CPU at the limit."""
    n = p['n']
    conns = []
    replied = 0

    async def one(i):
        nonlocal replied
        c = Conn(port, ws)
        try:
            await c.open(p.get('connect_timeout', 3))
            conns.append(c)
            c.send(f'hold {i}\n'.encode())
            got = await c.readline(p.get('connect_timeout', 3))
            if got == reply_for(f'hold {i}'.encode()):
                replied += 1
        except Exception:
            pass

    await asyncio.gather(*(one(i) for i in range(n)))
    open_now = sum(1 for c in conns if not c.eof and not c.reader.at_eof())
    print(f'HOLDING connected={len(conns)} open={open_now} replied={replied}', flush=True)
    await asyncio.sleep(p.get('hold', 4))
    for c in conns:
        c.close()
    await asyncio.sleep(0.2)
    note = f'{len(conns)} of {n} connected, {replied} replied, {open_now} held open at the limit'
    return dict(ok=True, correct=replied, total=replied, note=note)


async def s_load(port, ws, p):
    """n clients doing round trips until the server goes away (SIGTERM under load)."""
    n = p['n']
    stats = dict(correct=0, wrong=0)
    started = asyncio.Event()
    count = 0

    async def one(i):
        nonlocal count
        c = Conn(port, ws)
        try:
            await c.open(10)
            k = 0
            while True:
                line = f'load {i} {k}'.encode()
                c.send(line + b'\n')
                got = await c.readline(15)
                if got == b'':
                    return
                if got == reply_for(line):
                    stats['correct'] += 1
                else:
                    stats['wrong'] += 1
                    return
                k += 1
                count += 1
                if count >= n * 10:
                    started.set()
        except Exception:
            return
        finally:
            c.close()

    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    try:
        await asyncio.wait_for(started.wait(), 15)
        print('LOADED', flush=True)
    except asyncio.TimeoutError:
        print('LOADED (slowly)', flush=True)
    await asyncio.wait(tasks, timeout=p.get('seconds', 20))
    for t in tasks:
        t.cancel()
    total = stats['correct'] + stats['wrong']
    return dict(ok=stats['wrong'] == 0, correct=stats['correct'], total=total, note=f'{n} clients in round trips until the end')


async def s_probe(port, ws, p):
    attempts = p.get('attempts', 1)
    detail = ''
    for k in range(attempts):
        ok, detail = await probe(port, ws, p.get('tag', 'fresh'), p.get('timeout', 10))
        if ok:
            return dict(ok=True, correct=1, total=1, note=f'after {k + 1} attempts' if k else '')
        await asyncio.sleep(p.get('pause', 0.5))
    return dict(ok=False, correct=0, total=1, note=detail)


SCENARIOS = {
    'idle': s_idle,
    'reset': lambda port, ws, p: s_connects(port, ws, p, True),
    'close': lambda port, ws, p: s_connects(port, ws, p, False),
    'slowloris': s_slowloris,
    'no-reader': s_no_reader,
    'long-line': s_long_line,
    'garbage': s_garbage,
    'rst-mid-reply': s_reset_mid_reply,
    'half-close': s_half_close,
    'emfile': s_emfile,
    'load': s_load,
    'probe': s_probe,
}


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        print(f'scenarios: {" ".join(SCENARIOS)}', file=sys.stderr)
        sys.exit(2)
    raise_fd_limit()
    name, port, ws, params = sys.argv[1], int(sys.argv[2]), sys.argv[3] == '1', json.loads(sys.argv[4])
    t0 = time.monotonic()
    try:
        result = asyncio.run(SCENARIOS[name](port, ws, params))
    except Exception as e:
        result = dict(ok=False, correct=0, total=0, note=f'client error: {type(e).__name__} {e}'.strip()[:200])
    result['seconds'] = round(time.monotonic() - t0, 2)
    print('RESULT ' + json.dumps(result), flush=True)


if __name__ == '__main__':
    main()
