/*
 * The benchmark's C load generator: the same protocol, messages and checks
 * as nbecho/bench/load.py, at a fraction of its CPU per message, so that
 * the server, not the load generator, is what a run measures.
 *
 * Usage: loadgen HOST PORT CONNECTIONS SIZE DEPTH [REQUESTS]
 *
 * It connects, prints "ready", reads "go T1 T2" (CLOCK_MONOTONIC seconds,
 * the clock of Python's time.monotonic on Linux: the measured window),
 * keeps DEPTH messages in flight on every connection until T2, waits for
 * every outstanding echo, and prints one JSON line with what it measured.
 * With REQUESTS 1 it is a closed loop as vmbench's echo client is: each
 * connection sends DEPTH messages as one request, waits for all of their
 * echoes, then sends the next; latencies are then per request.
 * A message is a sequence number padded with x (vmbench's payload is all
 * x) to SIZE - 1 bytes, and LF; every byte that comes back is compared
 * with what was sent.
 *
 * Built with "gcc -O2" by nbecho/bench/loaders.py at run time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 50000
#define DRAIN_TIMEOUT 20.0
#define RECV_SIZE 262144

struct conn {
    int fd;
    unsigned long long seq;    /* messages generated so far */
    unsigned long long echoed; /* bytes echoed and checked */
    unsigned long long done;   /* messages echoed completely */
    double *sentAt;            /* ring of send times, DEPTH long */
    size_t sentHead, sentCount;
    char *out; /* bytes the kernel did not take yet */
    size_t outOff, outLen, outCap;
    unsigned long long expectFor; /* message held in expect, or ~0 */
    char *expect;
    double requestAt; /* when the request in flight was sent */
};

static size_t size, width;
static unsigned long long modulo;
static int depth;
static int requests; /* 1: closed loop, DEPTH messages a request */

static void fail(const char *why) {
    fprintf(stderr, "load generator: %s\n", why);
    exit(1);
}

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpuTime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Message number n: its digits, padded with x to width, then LF. */
static void message(char *buf, unsigned long long n) {
    unsigned long long v = n % modulo;
    size_t i = width;
    memset(buf, 'x', width);
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    buf[width] = '\n';
}

static void *allocate(size_t bytes) {
    void *p = malloc(bytes);
    if (!p)
        fail("out of memory");
    return p;
}

static void watch(int epfd, struct conn *c, unsigned int events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl failed");
}

static void sendMessages(int epfd, struct conn *c, int k, double now) {
    size_t need = c->outLen + (size_t)k * size;
    if (need > c->outCap) {
        c->outCap = need * 2;
        c->out = realloc(c->out, c->outCap);
        if (!c->out)
            fail("out of memory");
    }
    for (int i = 0; i < k; i++) {
        message(c->out + c->outLen, c->seq++);
        c->outLen += size;
        c->sentAt[(c->sentHead + c->sentCount++) % depth] = now;
    }
    if (c->outOff)
        return; /* already waiting for the socket to take more */
    ssize_t sent = send(c->fd, c->out, c->outLen, 0);
    if (sent < 0) {
        if (errno != EAGAIN)
            fail("send failed");
        sent = 0;
    }
    if ((size_t)sent == c->outLen) {
        c->outLen = 0;
        return;
    }
    c->outOff = (size_t)sent;
    watch(epfd, c, EPOLLIN | EPOLLOUT);
}

static void flush(int epfd, struct conn *c) {
    ssize_t sent = send(c->fd, c->out + c->outOff, c->outLen - c->outOff, 0);
    if (sent < 0) {
        if (errno == EAGAIN)
            return;
        fail("send failed");
    }
    c->outOff += (size_t)sent;
    if (c->outOff == c->outLen) {
        c->outOff = c->outLen = 0;
        watch(epfd, c, EPOLLIN);
    }
}

/* Compare data with what c sent from byte c->echoed on. */
static int check(struct conn *c, const char *data, size_t n) {
    unsigned long long pos = c->echoed;
    while (n) {
        unsigned long long msg = pos / size;
        size_t off = (size_t)(pos % size), take = size - off;
        if (take > n)
            take = n;
        if (c->expectFor != msg) {
            message(c->expect, msg);
            c->expectFor = msg;
        }
        if (memcmp(c->expect + off, data, take) != 0)
            return 0;
        data += take;
        n -= take;
        pos += take;
    }
    return 1;
}

/* Reservoir sampling: at most MAX_SAMPLES, all equally likely. */
static void sample(double *samples, unsigned long long *seen, double value) {
    if (*seen < MAX_SAMPLES)
        samples[*seen] = value;
    else {
        unsigned long long j = (unsigned long long)(drand48() * (*seen + 1));
        if (j < MAX_SAMPLES)
            samples[j] = value;
    }
    (*seen)++;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7)
        fail("usage: loadgen HOST PORT CONNECTIONS SIZE DEPTH [REQUESTS]");
    requests = argc == 7 && atoi(argv[6]) == 1;
    int count = atoi(argv[3]);
    size = (size_t)atol(argv[4]);
    depth = atoi(argv[5]);
    if (count < 1 || size < 2 || depth < 1)
        fail("CONNECTIONS, DEPTH need at least 1, SIZE at least 2");
    width = size - 1;
    modulo = 1;
    for (size_t i = 0; i < width && i < 18; i++)
        modulo *= 10;

    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1)
        fail("HOST must be an IPv4 address");
    int epfd = epoll_create1(0);
    struct conn *conns = calloc((size_t)count, sizeof *conns);
    if (epfd < 0 || !conns)
        fail("cannot set up");
    for (int i = 0; i < count; i++) {
        struct conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0)
            fail("cannot connect");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int flags = fcntl(c->fd, F_GETFL);
        if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0)
            fail("cannot make a socket non-blocking");
        c->sentAt = allocate(sizeof(double) * (size_t)depth);
        c->expect = allocate(size);
        c->expectFor = ~0ULL;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            fail("epoll_ctl failed");
    }
    printf("ready\n");
    fflush(stdout);
    double start, end;
    if (scanf(" go %lf %lf", &start, &end) != 2)
        fail("expected 'go T1 T2'");

    double *samples = allocate(sizeof(double) * MAX_SAMPLES);
    unsigned long long windowMessages = 0, windowRequests = 0, seen = 0, bytesChecked = 0;
    double cpuStart = -1, cpuEnd = -1, drainDeadline = -1;
    int sending = 1, outstanding = count;
    char *buf = allocate(RECV_SIZE);
    struct epoll_event events[256];
    srand48((long)getpid());

    double now = monotonic();
    for (int i = 0; i < count; i++) {
        conns[i].requestAt = now;
        sendMessages(epfd, &conns[i], depth, now);
    }
    while (outstanding) {
        int ready = epoll_wait(epfd, events, 256, 50);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait failed");
        }
        now = monotonic();
        if (cpuStart < 0 && now >= start)
            cpuStart = cpuTime();
        if (sending && now >= end) {
            cpuEnd = cpuTime();
            sending = 0;
            drainDeadline = now + DRAIN_TIMEOUT;
        }
        if (drainDeadline >= 0 && now > drainDeadline)
            fail("echoes still missing 20s after the window closed");
        int inWindow = start <= now && now < end;
        for (int e = 0; e < ready; e++) {
            struct conn *c = events[e].data.ptr;
            if (events[e].events & EPOLLOUT)
                flush(epfd, c);
            if (!(events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            ssize_t n = recv(c->fd, buf, RECV_SIZE, 0);
            if (n < 0) {
                if (errno == EAGAIN)
                    continue;
                fail("recv failed");
            }
            if (n == 0)
                fail("the server closed a connection");
            if (c->echoed + (unsigned long long)n > c->seq * size || !check(c, buf, (size_t)n)) {
                char why[80];
                snprintf(why, sizeof why, "connection %d: echo differs from what was sent", c->fd);
                fail(why);
            }
            c->echoed += (unsigned long long)n;
            bytesChecked += (unsigned long long)n;
            unsigned long long done = c->echoed / size;
            int k = (int)(done - c->done);
            if (!k)
                continue;
            c->done = done;
            for (int i = 0; i < k; i++) {
                double sent = c->sentAt[c->sentHead];
                c->sentHead = (c->sentHead + 1) % depth;
                c->sentCount--;
                if (!inWindow)
                    continue;
                windowMessages++;
                if (!requests) {
                    windowRequests++;
                    sample(samples, &seen, now - sent);
                }
            }
            int idle = c->echoed == c->seq * size;
            if (requests && idle && inWindow) {
                windowRequests++;
                sample(samples, &seen, now - c->requestAt);
            }
            if (sending && !requests)
                sendMessages(epfd, c, k, now);
            else if (sending && idle) {
                c->requestAt = now;
                sendMessages(epfd, c, depth, now);
            } else if (!sending && idle)
                outstanding--;
        }
    }
    if (cpuStart < 0)
        cpuStart = cpuTime();
    if (cpuEnd < 0)
        cpuEnd = cpuTime();
    for (int i = 0; i < count; i++)
        close(conns[i].fd);
    printf("{\"messages\": %llu, \"requests\": %llu, \"seconds\": %.6f, \"cpu\": %.6f, "
           "\"bytesChecked\": %llu, \"messagesChecked\": %llu, \"latencies\": [",
           windowMessages, windowRequests, end - start, cpuEnd - cpuStart, bytesChecked,
           bytesChecked / size);
    unsigned long long kept = seen < MAX_SAMPLES ? seen : MAX_SAMPLES;
    for (unsigned long long i = 0; i < kept; i++)
        printf(i ? ", %.1f" : "%.1f", samples[i] * 1e6);
    printf("]}\n");
    return 0;
}
