// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem check of a sender held inside send() by slow user memory:
 *   held_sender  after 256 KiB client -> server, a thread sends 64 KiB from a buffer whose pages fault on a
 *                userfaultfd that the main thread answers only HS_HOLD_MS later: the send stays inside the kernel,
 *                with the socket locked, for that long (as a send from FUSE or NFS memory can). Meanwhile the
 *                server sends its first 64 KiB on the connection. Once the pages are filled in, the send returns all
 *                64 KiB; both directions arrive exact.
 * Over plain TCP this shows nothing: TCP holds the socket lock in the same way. The lab runs it alongside another
 * connection (held-socket-domU-domU-tunnel): the module must not let one held socket stall the control events of
 * every other socket (a tunnel for the other connection is still mapped while this one is held).
 */
#include "tcpsem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HS_WARMUP (256u << 10)
#define HS_BYTES (64u << 10)
#define HS_HOLD_MS 9000 /* long enough for the lab to run another connection meanwhile, under TCG */
#define HS_SERVER_DELAY_MS 1000

struct hs_sender {
	int fd;
	const uint8_t *buf;
	ssize_t r;
	int err;
	atomic_int done;
};

static void *hs_send(void *p)
{
	struct hs_sender *h = p;

	do
		h->r = send(h->fd, h->buf, HS_BYTES, MSG_NOSIGNAL);
	while (h->r < 0 && errno == EINTR);
	h->err = errno;
	atomic_store(&h->done, 1);
	return NULL;
}

int held_sender_client(int fd, struct ctx *c)
{
	static uint8_t fill[HS_BYTES];
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	struct uffdio_copy copy;
	struct hs_sender h = { .fd = fd };
	struct uffd_msg msg;
	uint64_t off = 0, back = 0;
	char sv[LINE_MAX_LEN];
	pthread_t th;
	uint8_t *region;
	int uffd, e;
	long fault_ms, held_ms;
	double t0;

	if (send_pattern(fd, c->check->seed, &off, HS_WARMUP, "the first 256 KiB") < 0)
		return -1;
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return fail_sys("userfaultfd");
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		return fail_sys("UFFDIO_API");
	region = mmap(NULL, HS_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		return fail_sys("mmap");
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (unsigned long)region;
	reg.range.len = HS_BYTES;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return fail_sys("UFFDIO_REGISTER");
	h.buf = region;
	t0 = now_s();
	e = pthread_create(&th, NULL, hs_send, &h);
	if (e) {
		errno = e;
		return fail_sys("pthread_create");
	}
	/* the send is inside the kernel, faulting on the buffer's first page */
	if (wait_for(uffd, POLLIN, 5000) <= 0 || read(uffd, &msg, sizeof(msg)) != (ssize_t)sizeof(msg) ||
	    msg.event != UFFD_EVENT_PAGEFAULT)
		return fail("the send did not fault on its buffer within 5 s");
	fault_ms = ms_since(t0);
	msleep(HS_HOLD_MS);
	if (atomic_load(&h.done))
		return fail("the send returned (%zd) while its buffer was still missing", h.r);
	held_ms = ms_since(t0) - fault_ms;
	pat_fill(c->check->seed, HS_WARMUP, fill, sizeof(fill));
	memset(&copy, 0, sizeof(copy));
	copy.dst = (unsigned long)region;
	copy.src = (unsigned long)fill;
	copy.len = HS_BYTES;
	if (ioctl(uffd, UFFDIO_COPY, &copy) < 0)
		return fail_sys("UFFDIO_COPY");
	pthread_join(th, NULL);
	if (h.r != (ssize_t)HS_BYTES) {
		errno = h.err;
		return h.r < 0 ? fail_sys("the held send") : fail("the held send returned %zd, expected %u", h.r, HS_BYTES);
	}
	if (recv_pattern(fd, c->check->seed + 1000, &back, HS_BYTES, "the server's 64 KiB") < 0)
		return -1;
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (read_verdict(fd, sv, sizeof(sv)) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	close(uffd);
	munmap(region, HS_BYTES);
	note("a send of %u bytes held %ld ms in a page fault (userfaultfd) returned all of them once filled in; the server's 64 KiB, sent meanwhile, exact; server: %s",
	     HS_BYTES, held_ms, sv);
	return 0;
}

int held_sender_server(int fd, struct ctx *c)
{
	uint64_t off = 0, back = 0;
	int rc;

	if (recv_pattern(fd, c->check->seed, &off, HS_WARMUP, "the first 256 KiB") < 0)
		return send_verdict(fd, -1);
	msleep(HS_SERVER_DELAY_MS);
	/* the server's first bytes on the connection, while the client's send is held */
	if (send_pattern(fd, c->check->seed + 1000, &back, HS_BYTES, "the server's 64 KiB") < 0)
		return -1;
	rc = recv_pattern(fd, c->check->seed, &off, HS_BYTES, "the held send's bytes");
	if (rc == 0)
		rc = expect_eof(fd, 10000, "at the end");
	if (rc == 0)
		note("read the 256 KiB and the held send's %u bytes, exact, then EOF", HS_BYTES);
	return send_verdict(fd, rc);
}
