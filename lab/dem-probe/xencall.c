/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dem-probe: the Xen side. DEM hypercalls through the Linux privcmd device, VIRQ binding through the evtchn
 * device, and memory that is safe to hand to Xen.
 *
 * privcmd neither pins nor copies the hypercall's argument: Xen reads and writes the guest virtual address
 * directly, and a page that is not present (never touched, swapped out, or still the shared zero page for a
 * write) makes the hypercall fail with -EFAULT. So every buffer passed to Xen here comes from dem_alloc(), which
 * writes every page and tries to lock it.
 */
#include "dem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Linux UAPI include/uapi/xen/privcmd.h (its installed copy needs kernel-internal xen/interface/xen.h). */
struct privcmd_hypercall {
	uint64_t op;
	uint64_t arg[5];
};
#define IOCTL_PRIVCMD_HYPERCALL _IOC(_IOC_NONE, 'P', 0, sizeof(struct privcmd_hypercall))

/* Linux UAPI include/uapi/xen/evtchn.h (defined here so domid_t does not clash with Xen's public headers). */
struct ioctl_evtchn_bind_virq {
	unsigned int virq;
};
#define IOCTL_EVTCHN_BIND_VIRQ _IOC(_IOC_NONE, 'E', 0, sizeof(struct ioctl_evtchn_bind_virq))

/*
 * The hypercall's errors reach us as Linux errnos (privcmd returns Xen's -E value, libc puts it in errno) and are
 * printed with Linux's names. That is right only because Xen's values equal Linux's for every error the DEM
 * returns; check it against Xen's own list.
 */
#include "version.h" /* Xen's public/version.h: XENVER_version */
#include "errno.h" /* Xen's public/errno.h (quoted include path), not libc's: enum xen_errno { XEN_EPERM = 1, ... } */
#define SAME_ERRNO(e) _Static_assert(XEN_##e == e, "Xen and Linux differ on " #e)
SAME_ERRNO(EPERM);
SAME_ERRNO(ENOENT);
SAME_ERRNO(ESRCH);
SAME_ERRNO(E2BIG);
SAME_ERRNO(EACCES);
SAME_ERRNO(EFAULT);
SAME_ERRNO(EBUSY);
SAME_ERRNO(EEXIST);
SAME_ERRNO(EINVAL);
SAME_ERRNO(ENOSPC);
SAME_ERRNO(ENOSYS);
SAME_ERRNO(EOPNOTSUPP);
SAME_ERRNO(ELOOP); /* not in Xen 4.17's list: the DEM patch adds it (raise to the caller's own address) */

static int privcmd_fd = -1;
static unsigned char *scratch; /* one touched, locked page for small structures */
static const size_t scratch_len = 4096;

const char *dem_privcmd_path(void)
{
	const char *p = getenv("DEM_PROBE_PRIVCMD");

	return p && *p ? p : "/dev/xen/privcmd";
}

const char *dem_evtchn_path(void)
{
	const char *p = getenv("DEM_PROBE_EVTCHN");

	return p && *p ? p : "/dev/xen/evtchn";
}

void *dem_alloc(size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t n = (len + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
	void *p;

	if (n == 0)
		n = (size_t)pg;
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "dem-probe: mmap %zu bytes: %s\n", n, strerror(errno));
		exit(1);
	}
	/* A write fault on every page gives it a private, present, writable frame. */
	for (size_t o = 0; o < n; o += (size_t)pg)
		((volatile unsigned char *)p)[o] = 0;
	(void)mlock(p, n); /* keep it present; without CAP_IPC_LOCK beyond the limit, touching alone must do */
	return p;
}

void *dem_noaccess_page(void)
{
	void *p = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "dem-probe: mmap PROT_NONE: %s\n", strerror(errno));
		exit(1);
	}
	return p;
}

#ifdef DEM_PROBE_MODEL
/* Host-test build only (make model): model.c answers instead of Xen. Never in the guest binary. */
int model_open(void);
long model_op(unsigned int cmd, void *arg);
#endif

int dem_open(void)
{
	if (privcmd_fd >= 0)
		return 0;
#ifdef DEM_PROBE_MODEL
	privcmd_fd = model_open();
#else
	privcmd_fd = open(dem_privcmd_path(), O_RDWR | O_CLOEXEC);
#endif
	if (privcmd_fd < 0)
		return -errno;
	if (!scratch)
		scratch = dem_alloc(scratch_len);
	return 0;
}

/*
 * Linux's privcmd (Debian's 6.1 included) refuses every hypercall with EPERM in a domain that is neither dom0 nor
 * a device-model stub domain ("xen_privcmd: No target domain found, blocking all hypercalls"), unless the module
 * is loaded with unrestricted=1 (a parameter sysfs does not show). So an EPERM in a domU may come from the kernel,
 * not from the DEM: tell them apart with xen_version(XENVER_version), which Xen allows every domain.
 */
int dem_privcmd_blocked(void)
{
	struct privcmd_hypercall h = { .op = __HYPERVISOR_xen_version, .arg = { XENVER_version, 0 } };

	if (privcmd_fd < 0)
		return 0;
#ifdef DEM_PROBE_MODEL
	(void)h;
	return 0;
#else
	return ioctl(privcmd_fd, IOCTL_PRIVCMD_HYPERCALL, &h) < 0 && errno == EPERM;
#endif
}

void dem_open_error(char *buf, size_t n, int r)
{
	const char *why = "";

	if (r == -ENOENT)
		why = " (not a Xen guest, or xen-privcmd not loaded: modprobe xen-privcmd)";
	else if (r == -EACCES || r == -EPERM)
		why = " (run as root)";
	snprintf(buf, n, "cannot open %s: %s%s", dem_privcmd_path(), strerror(-r), why);
}

long dem_op(unsigned int cmd, void *arg)
{
	struct privcmd_hypercall h = {
		.op = DEM_HYPERCALL,
		.arg = { cmd, (uint64_t)(uintptr_t)arg },
	};
	long r;

	if (privcmd_fd < 0)
		return -EBADF;
#ifdef DEM_PROBE_MODEL
	(void)h;
	return model_op(cmd, arg);
#endif
	r = ioctl(privcmd_fd, IOCTL_PRIVCMD_HYPERCALL, &h);
	return r < 0 ? -errno : r;
}

long dem_op_obj(unsigned int cmd, void *obj, size_t len)
{
	long r;

	if (len > scratch_len || !scratch)
		return -EINVAL;
	memcpy(scratch, obj, len);
	r = dem_op(cmd, scratch);
	memcpy(obj, scratch, len);
	return r;
}

int evt_open(void)
{
	int fd = open(dem_evtchn_path(), O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int evt_bind_virq(int fd, unsigned int virq)
{
	struct ioctl_evtchn_bind_virq b = { .virq = virq };
	int r = ioctl(fd, IOCTL_EVTCHN_BIND_VIRQ, &b);

	return r < 0 ? -errno : r;
}

int evt_read(int fd, uint32_t *ports, int max)
{
	ssize_t n = read(fd, ports, (size_t)max * sizeof(*ports));

	if (n < 0)
		return -errno;
	return (int)(n / (ssize_t)sizeof(*ports));
}

int evt_unmask(int fd, uint32_t port)
{
	ssize_t n = write(fd, &port, sizeof(port));

	if (n < 0)
		return -errno;
	return n == sizeof(port) ? 0 : -EIO;
}
