/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shims that let the real xen/common/evtmgr.c compile and run on the host (the recipe of Xen's tools/tests/vpci):
 * the Makefile blanks its #include lines and puts this header first. Everything here checks how the hypervisor code
 * uses it: lock state (recursion, two L2 at once, L2 without L1, VIRQ sent under L2), guest copies (an injectable
 * bad range, unchecked __copy_* only inside a range validated by guest_handle_okay, how many times guest memory is
 * read per hypercall), allocations (failure injection, live count for leak checks) and RCU domain references.
 */
#ifndef EMUL_H
#define EMUL_H

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- compiler and Xen basics ---- */
#define __init
#define __read_mostly
#define __maybe_unused __attribute__((__unused__))
#define cf_check
#define __initcall(fn)
#define boolean_param(name, var)
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BUILD_BUG_ON(c) _Static_assert(!(c), #c)
#define ASSERT(x) assert(x)
#define ASSERT_UNREACHABLE() assert(!"unreachable")
#define BUG_ON(x) assert(!(x))
#define min(a, b) ({ typeof(a) a_ = (a); typeof(b) b_ = (b); a_ < b_ ? a_ : b_; })
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define smp_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define read_atomic(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define arch_fetch_and_add(p, v) __atomic_fetch_add((p), (typeof(*(p)))(v), __ATOMIC_SEQ_CST)
#define array_index_nospec(i, n) ({ assert((i) < (n)); (i); })

typedef uint16_t domid_t;
#define xen_mk_uint(x) x##U
#include "xen_defs.h"             /* generated: VIRQ_EVTMGR, __HYPERVISOR_evtmgr_op, DOMID_* from public/xen.h */
#define XEN_FLEX_ARRAY_DIM

#include "list.h"                 /* generated: the real xen/include/xen/list.h without its #includes */

/* ---- logging ---- */
#define XENLOG_GUEST "<G>"
#define XENLOG_DEBUG "<3>"
static unsigned int emul_log_lines, emul_log_debug;
static char emul_last_log[256];
static void __attribute__((format(printf, 2, 3))) emul_log(const char *lvl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(emul_last_log, sizeof(emul_last_log), fmt, ap);
    va_end(ap);
    emul_log_lines++;
    if ( !strcmp(lvl, XENLOG_GUEST XENLOG_DEBUG) )   /* guest debug level: filtered and rate-limited */
        emul_log_debug++;
}
#define printk(fmt, args...) emul_log("", fmt, ## args)
#define gprintk(lvl, fmt, args...) emul_log(XENLOG_GUEST lvl, fmt, ## args)   /* as Xen's */

/* ---- domains, current, RCU ---- */
struct evtmgr_domain;
struct domain {
    domid_t domain_id;
    unsigned int is_dying;
    bool is_privileged;
    bool exists;                  /* in the fake domain list (rcu_lock_domain_by_id finds it) */
    struct evtmgr_domain *evtmgr;
    unsigned int virqs;           /* VIRQ_EVTMGR signals received */
};
struct vcpu {
    struct domain *domain;
};
static struct vcpu emul_vcpu;
#define current (&emul_vcpu)

#define EMUL_MAX_DOMAINS 300
static struct domain emul_domains[EMUL_MAX_DOMAINS];
static int emul_rcu_depth;

static struct domain *rcu_lock_domain_by_id(domid_t id)
{
    unsigned int i;

    for ( i = 0; i < EMUL_MAX_DOMAINS; i++ )
        if ( emul_domains[i].exists && emul_domains[i].domain_id == id )
        {
            emul_rcu_depth++;
            return &emul_domains[i];
        }
    return NULL;
}

static void rcu_unlock_domain(struct domain *d)
{
    assert(d);
    assert(emul_rcu_depth > 0);
    emul_rcu_depth--;
}

static unsigned int get_random(void)
{
    return 0x9e3779b9U;
}

/* ---- locks: single-threaded, so every misuse is visible as a state error ---- */
typedef struct {
    int readers;
    bool writer;
} rwlock_t;
#define DEFINE_RWLOCK(l) rwlock_t l = { 0, false }

typedef struct {
    bool locked;
} spinlock_t;

static int emul_spin_held;        /* spinlocks held now: the DEM never holds two L2 */
static unsigned long emul_write_locks;    /* write_lock() calls, to see which paths take L1 for write */
/* Called once by the next write_lock() before it takes the lock, with no DEM lock held: what another vCPU may do
 * between a raise's pass under L1 read and its pass under L1 write. */
static void (*emul_before_write_lock)(void);

static void read_lock(rwlock_t *l)
{
    assert(!l->writer);
    assert(!l->readers);          /* no recursion (rwlocks are not recursive under writer contention) */
    l->readers++;
}
static void read_unlock(rwlock_t *l)
{
    assert(l->readers == 1 && !l->writer);
    assert(!emul_spin_held);      /* L2 released before L1 */
    l->readers--;
}
static void write_lock(rwlock_t *l)
{
    void (*hook)(void) = emul_before_write_lock;

    if ( hook )
    {
        emul_before_write_lock = NULL;
        assert(!l->writer && !l->readers && !emul_spin_held);
        hook();
    }
    emul_write_locks++;
    assert(!l->writer && !l->readers);
    l->writer = true;
}
static void write_unlock(rwlock_t *l)
{
    assert(l->writer && !l->readers);
    assert(!emul_spin_held);
    l->writer = false;
}
#define rw_is_locked(l) ((l)->readers || (l)->writer)
#define rw_is_write_locked(l) ((l)->writer)

static void spin_lock_init(spinlock_t *l)
{
    l->locked = false;
}
static void emul_spin_lock(spinlock_t *l, bool l1_held)
{
    assert(l1_held);              /* L2 only under L1 */
    assert(!l->locked);
    assert(!emul_spin_held);      /* never two L2 at once */
    l->locked = true;
    emul_spin_held++;
}
/* Expanded inside evtmgr.c, where evtmgr_L1_lock is visible. */
#define spin_lock(l) emul_spin_lock((l), rw_is_locked(&evtmgr_L1_lock))
static void spin_unlock(spinlock_t *l)
{
    assert(l->locked);
    l->locked = false;
    emul_spin_held--;
}
#define spin_is_locked(l) ((l)->locked)

/* ---- memory ---- */
static long emul_alloc_fail_after = -1;   /* >= 0: that many allocations succeed, then they fail */
static unsigned long emul_alloc_failures;
static unsigned long emul_alloc_calls;    /* every allocation attempt, failed or not */
static long emul_allocs_live;

static void *emul_alloc(size_t n, bool zero)
{
    void *p;

    emul_alloc_calls++;
    if ( emul_alloc_fail_after == 0 )
    {
        emul_alloc_failures++;
        return NULL;
    }
    if ( emul_alloc_fail_after > 0 )
        emul_alloc_fail_after--;
    p = zero ? calloc(1, n) : malloc(n);
    assert(p);
    if ( !zero )
        memset(p, 0xa5, n);       /* xmalloc does not zero: make reliance on it visible */
    emul_allocs_live++;
    return p;
}
static void emul_free(void *p)
{
    if ( !p )
        return;
    emul_allocs_live--;
    assert(emul_allocs_live >= 0);
    free(p);
}
#define xzalloc(type) ((type *)emul_alloc(sizeof(type), true))
#define xmalloc_array(type, n) ((type *)emul_alloc(sizeof(type) * (n), false))
#define xfree(p) emul_free(p)

/* ---- guest handles and copies ---- */
#define XEN_GUEST_HANDLE(t) __guest_handle_ ## t
#define XEN_GUEST_HANDLE_PARAM(t) XEN_GUEST_HANDLE(t)
#define DEFINE_XEN_GUEST_HANDLE(t) \
    typedef struct { t *p; } __guest_handle_ ## t; \
    typedef struct { const t *p; } __guest_handle_const_ ## t
typedef struct { void *p; } __guest_handle_void;

#define guest_handle_cast(hnd, type) ({ type *x_ = (hnd).p; (XEN_GUEST_HANDLE_PARAM(type)){ x_ }; })
#define guest_handle_add_offset(hnd, nr) ((hnd).p += (nr))
#define guest_handle_for_field(hnd, type, fld) ((XEN_GUEST_HANDLE(type)){ &(hnd).p->fld })
#define guest_handle_is_null(hnd) ((hnd).p == NULL)

/* A "bad" guest range: any access touching it fails, like an unmapped page. */
static const char *emul_bad_lo, *emul_bad_hi;
/* >= 0: that many successful copies to the guest, then they fail (a fault in the middle of a batch). */
static long emul_copy_to_fail_after = -1;
/* > 0: only the copy to the guest with this number (1 = the next one) fails. */
static long emul_copy_to_fail_nth;
static unsigned int emul_guest_reads;     /* copies from the guest in this hypercall */
static const char *emul_ok_lo, *emul_ok_hi; /* the last range guest_handle_okay() accepted */

static bool emul_touches_bad(const void *p, size_t len)
{
    const char *c = p;

    if ( !emul_bad_lo )
        return false;
    return c < emul_bad_hi && c + len > emul_bad_lo;
}

static bool emul_range_ok(const void *p, size_t len)
{
    if ( emul_touches_bad(p, len) )
        return false;
    emul_ok_lo = p;
    emul_ok_hi = (const char *)p + len;
    return true;
}
#define guest_handle_okay(hnd, nr) emul_range_ok((hnd).p, (size_t)(nr) * sizeof(*(hnd).p))

static unsigned long emul_copy_from(void *to, const void *from, size_t len)
{
    emul_guest_reads++;
    if ( emul_touches_bad(from, len) )
        return len;
    memcpy(to, from, len);
    return 0;
}
static unsigned long emul_copy_to(void *to, const void *from, size_t len, bool unchecked)
{
    if ( unchecked )              /* __copy_*: only inside what guest_handle_okay() validated */
        assert((const char *)to >= emul_ok_lo && (const char *)to + len <= emul_ok_hi);
    if ( emul_touches_bad(to, len) )
        return len;
    if ( emul_copy_to_fail_after == 0 )
        return len;
    if ( emul_copy_to_fail_nth > 0 && !--emul_copy_to_fail_nth )
        return len;
    if ( emul_copy_to_fail_after > 0 )
        emul_copy_to_fail_after--;
    memcpy(to, from, len);
    return 0;
}

#define copy_from_guest(ptr, hnd, nr) ({ \
    const typeof(*(ptr)) *s_ = (hnd).p; \
    emul_copy_from((ptr), s_, sizeof(*(ptr)) * (nr)); })
#define copy_to_guest_offset_(hnd, off, ptr, nr, unchecked) ({ \
    const typeof(*(ptr)) *s_ = (ptr); \
    char (*d_)[sizeof(*s_)] = (void *)(hnd).p; \
    void *__maybe_unused t_ = (hnd).p;   /* not a const handle */ \
    (void)((hnd).p == s_);               /* same type */ \
    emul_copy_to(d_ + (off), s_, sizeof(*s_) * (nr), (unchecked)); })
#define copy_to_guest_offset(hnd, off, ptr, nr) copy_to_guest_offset_(hnd, off, ptr, nr, false)
#define __copy_to_guest_offset(hnd, off, ptr, nr) copy_to_guest_offset_(hnd, off, ptr, nr, true)
#define copy_to_guest(hnd, ptr, nr) copy_to_guest_offset(hnd, 0, ptr, nr)
#define copy_field_to_guest(hnd, ptr, field) ({ \
    const typeof(&(ptr)->field) s_ = &(ptr)->field; \
    void *d_ = &(hnd).p->field; \
    (void)(&(hnd).p->field == s_); \
    emul_copy_to(d_, s_, sizeof(*s_), false); })

/* ---- events ---- */
static unsigned int emul_virqs_total;
static void send_guest_global_virq(struct domain *d, uint32_t virq)
{
    assert(virq == VIRQ_EVTMGR);
    assert(!emul_spin_held);      /* never under L2 */
    assert(d && d->exists && !d->is_dying);
    d->virqs++;
    emul_virqs_total++;
}

/* ---- XSM ---- */
typedef enum { XSM_HOOK, XSM_DM_PRIV, XSM_TARGET, XSM_PRIV, XSM_XS_PRIV, XSM_OTHER } xsm_default_t;
enum emul_xsm_mode { EMUL_XSM_DUMMY, EMUL_XSM_SILO, EMUL_XSM_DENY };
static enum emul_xsm_mode emul_xsm = EMUL_XSM_DUMMY;

static int emul_xsm_admin(xsm_default_t action)
{
    assert(action == XSM_PRIV);
    if ( emul_xsm == EMUL_XSM_DENY )
        return -EPERM;
    return current->domain->is_privileged ? 0 : -EPERM;
}
static int emul_xsm_raise(xsm_default_t action, const struct domain *src, const struct domain *dst)
{
    assert(action == XSM_HOOK);
    assert(src == current->domain);
    switch ( emul_xsm )
    {
    case EMUL_XSM_DUMMY:
        return 0;
    case EMUL_XSM_SILO:
        return (src->is_privileged || dst->is_privileged) ? 0 : -EPERM;
    default:
        return -EPERM;
    }
}
/* SILO's rule (silo_mode_dom_check): the owners a domain may learn are those it may talk to, itself included. */
static unsigned long emul_xsm_lookups;    /* evtmgr_lookup checks, to see that ip_lookup asks XSM */
static int emul_xsm_lookup(xsm_default_t action, const struct domain *src, const struct domain *dst, bool l1_held)
{
    assert(action == XSM_HOOK);
    assert(src == current->domain);
    assert(dst && dst->exists);
    assert(l1_held);              /* dst (the owner) stays valid only under L1 */
    emul_xsm_lookups++;
    switch ( emul_xsm )
    {
    case EMUL_XSM_DUMMY:
        return 0;
    case EMUL_XSM_SILO:
        return (src->is_privileged || dst->is_privileged || src == dst) ? 0 : -EPERM;
    default:
        return -EPERM;
    }
}
#define xsm_evtmgr_admin(action) emul_xsm_admin(action)
#define xsm_evtmgr_raise(action, src, dst) emul_xsm_raise(action, src, dst)
/* Expanded inside evtmgr.c, where evtmgr_L1_lock is visible. */
#define xsm_evtmgr_lookup(action, src, dst) emul_xsm_lookup(action, src, dst, rw_is_locked(&evtmgr_L1_lock))

/* ---- the ABI ---- */
#include "public/evtmgr.h"        /* generated: the real public/evtmgr.h without #include "xen.h" */

/* The prototype the hypercall table generates from include/hypercall-defs.c. */
long do_evtmgr_op(unsigned int cmd, XEN_GUEST_HANDLE_PARAM(void) arg);
int evtmgr_init(struct domain *d);
void evtmgr_destroy(struct domain *d);
void evtmgr_soft_reset(struct domain *d);

#endif /* EMUL_H */
