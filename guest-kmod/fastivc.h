/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * fastivc.h: what the parts of fastivc.ko share.
 *
 *   monitor.c  Protocol Monitor: the initial operation set on tcp_prot, the per-socket decision, proto swap
 *   tunnel.c   Tunnel Manager: sender pages and grants, receiver mapping, release
 *   geometry.c how big a new tunnel is (sized by demand from the socket's buffers, or fixed by parameters)
 *   sock.c     the tunnelled socket's operations (send, receive, poll, close) on top of ivc_ring.h
 *   sem.c      Socket Event Manager: VIRQ_EVTMGR, batched get_events, dispatch to sockets
 *   dem.c      the DEM hypercalls (xen-patches/ public/evtmgr.h)
 *   stats.c    /proc/fastivc and the xenstore mirror for dom0 tools
 *   lifecycle.c save, restore, migration: every tunnel goes back to TCP before the domain suspends
 *   link.c     links: tunnels kept past their connection (sender pooled, receiver parked) for the pair's next one
 *
 * Lock hierarchy (outer first): the socket lock (lock_sock) > fastivc_socks_lock (spinlock, the list of contexts).
 * link.c's link_lock (spinlock) nests inside the socket lock and is a leaf. sem.c's retry_lock (mutex) and a socket lock are never waited for while the other is held: the SEM runs in one
 * work item, takes at most one socket lock at a time, and never waits for one that the socket's owner holds
 * (sem.c: sem_trylock_sock); it leaves the events to the owner, who runs them under its own lock and only ever tries
 * retry_lock (fastivc_sem_owner_events). Tunnel pages are touched only by the
 * socket's owner (under lock_sock) or, for the shared header, read lock-free by poll and wake-up conditions.
 */
#ifndef FASTIVC_H
#define FASTIVC_H

#include <linux/types.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <net/sock.h>
#include <xen/interface/grant_table.h>
#include <net/tcp.h>
#include "ivc_ring.h"
#include "evtmgr_abi.h"

#define FASTIVC_VERSION "0.3.0"

/* Why a socket (or one direction of it) is on TCP. Order = the order of the fallback_* lines in /proc/fastivc/stats. */
enum fastivc_reason {
	FIVC_R_NONE = 0,
	FIVC_R_NOT_CORESIDENT,
	FIVC_R_SAME_DOMAIN,
	FIVC_R_LOOPBACK,
	FIVC_R_NOT_IPV4,
	FIVC_R_EXCLUDED_PORT,
	FIVC_R_NOT_ESTABLISHED,
	FIVC_R_OTHER_ULP,
	FIVC_R_KERNEL_SOCKET,
	FIVC_R_DISABLED,
	FIVC_R_DEM_ERROR,
	FIVC_R_NO_MEMORY,
	FIVC_R_GRANT_FAILED,
	FIVC_R_RAISE_FAILED,
	FIVC_R_PEER_REJECTED,
	FIVC_R_MAP_FAILED,
	FIVC_R_PEER_TIMEOUT,
	FIVC_R_OOB,
	FIVC_R_VIOLATION,
	FIVC_R_PEER_GONE,
	FIVC_R_BUDGET,
	FIVC_R_USER_TIMEOUT,
	FIVC_R_LOCAL_ADDRESS,
	FIVC_R_SUSPEND,
	FIVC_R_PEER_QUOTA,
	FIVC_R_COUNT
};
extern const char *const fastivc_reason_names[FIVC_R_COUNT];

enum fastivc_mode { FIVC_MODE_TUNNEL, FIVC_MODE_BROKEN, FIVC_MODE_CLOSED }; /* a native socket has no context */

/* State of one direction. */
enum fastivc_dir {
	FIVC_DIR_TCP,      /* no tunnel (yet, or for good: see reason) */
	FIVC_DIR_CREATING, /* sender: EVENT_CREATE_TUNNEL raised, waiting for the receiver to map it */
	FIVC_DIR_OPEN,
	FIVC_DIR_REVERTED, /* back on TCP after every channel was read (MSG_OOB) */
	FIVC_DIR_CLOSED,
	FIVC_DIR_BROKEN,
	FIVC_DIR_RESEND,   /* sender: the receiver detached; the bytes it did not consume go out on TCP first */
};

/* One direction's tunnel: the pages, and (on the receiver) their grant mappings. */
struct ivc_tunnel {
	bool sender;
	domid_t peer;
	u32 nr_channels, channel_size;
	u32 nr_data_pages, nr_dir_pages;
	struct ivc_ctrl *ctrl;      /* the control page, mapped */
	struct page *ctrl_page;
	struct page **dir_pages;    /* sender only */
	struct page **data;         /* nr_data_pages */
	grant_ref_t *refs;          /* sender: ctrl, dirs, data; */
	grant_handle_t *handles;    /* receiver: ctrl, data */
	struct page **map_pages;    /* receiver: pages backing ctrl + data mappings (gnttab_alloc_pages) */
	u32 nr_maps;
	u32 budget_pages;           /* pages charged to the page budget (tunnel.c), given back at release */
	struct rcu_work release_work;
	struct delayed_work retry_work; /* sender: waiting for the receiver to unmap before the pages go (tunnel.c) */
	u32 release_tries;
	bool fault_keep;            /* receiver, lab only (fault_inject never_unmap): kept mapped after release */
	struct list_head kept;      /* ... on tunnel.c's kept list */
	/* links (link.c) */
	struct list_head link_node; /* on link.c's pooled (sender) or parked (receiver) list */
	unsigned long link_since;   /* jiffies it joined its link (idle time) */
	unsigned long link_claimed; /* receiver, parked: jiffies | 1 since it saw the sender claim it */
	bool park;                  /* receiver: IVC_RX_PARKING written, its release work parks it (link.c) */
	bool no_reuse;              /* broken, faulted or taken back: never pooled or parked */
	bool claimed;               /* sender: taken from its link (its receiver still maps it) */
	bool offered;               /* sender: its EVENT_CREATE_TUNNEL went out */
	u32 dirty[IVC_MAX_CHANNELS]; /* sender: bytes of each channel written since its pages were last zeroed */
	struct xen_evtmgr_tunnel key; /* receiver: the CREATE it was mapped for (link.c finds it again by it) */
	struct xen_evtmgr_addr raddr; /* the peer's address (link.c asks the DEM whether the peer still lives) */
	union {
		struct ivc_tx tx;
		struct ivc_rx rx;
	};
};

/* Per-socket context, in icsk_ulp_data; created by the Protocol Monitor (or the SEM for an accepted socket). */
struct fastivc_sock {
	struct list_head node;          /* fastivc_socks, under fastivc_socks_lock */
	struct sock *sk;
	u64 id;
	struct proto *sk_proto;         /* the proto the socket had (tcp_prot) */
	const struct proto_ops *sk_ops; /* the socket's original ops (inet_stream_ops) */
	struct xen_evtmgr_addr laddr, raddr; /* the DEM's form: IPv4 (v4-mapped peers too) or IPv6 */
	u16 lport, rport;               /* host order */
	domid_t peer;                   /* the peer's domain (a context exists only for co-resident peers) */
	enum fastivc_mode mode;
	enum fastivc_reason reason;     /* of the mode, or of the last direction that fell back */
	enum fastivc_dir tx_state, rx_state;
	struct ivc_tunnel *tx, *rx;
	unsigned long tx_created;       /* jiffies of EVENT_CREATE_TUNNEL */
	unsigned long tx_retry_at;      /* jiffies | 1: a CREATE raise failed for a passing reason, try again then */
	unsigned int tx_retries;        /* such failed raises so far (FASTIVC_CREATE_RETRIES) */
	bool tx_peer_closed;            /* EVENT_RECV_CLOSE_TUNNEL: sends fail with EPIPE */
	u32 kick_pending;               /* EVENT_SEND_DATA / RECV_GET_DATA whose raise failed: the tick retries them */
	bool rx_poll_waiting, tx_poll_waiting; /* a poller found it not readable / writable (lock-free hint) */
	unsigned long rx_release_queued; /* bit 0: a poller queued the release of a read, then sealed, channel */
	u32 rx_switch_seq;              /* receiver: TCP copied_seq at which the tunnel's data starts */
	bool rx_switched;
	bool rx_unpublished;            /* receiver: mapped, IVC_RX_MAPPED not yet written (no read through us yet) */
	u32 rx_tunnels;                 /* receiver: tunnels mapped for this direction so far (sock.c rx_may_map) */
	unsigned long rx_again_at;      /* receiver: jiffies | 1 from which another may be (after a detach) */
	bool tx_accepted;               /* sender: the receiver accepted or mapped (ctrl rx_state): no create timeout */
	atomic_t tx_tcp_senders;        /* sendmsg/sendpage calls inside TCP's own (no switch while one is) */
	unsigned long tx_stall_since;   /* jiffies | 1 since every channel is held with no progress (TCP_USER_TIMEOUT) */
	u32 tx_stall_seq;               /* the sender's tx.seq then: a sealed channel since is progress */
	u32 rs_gen, rs_off;             /* FIVC_DIR_RESEND: the next byte to send again (ivc_tx_resend_next) */
	int rs_sndbuf;                  /* FIVC_DIR_RESEND: sk_sndbuf before the resend raised it (restored after) */
	int rs_sndbuf_raised;           /* ... and what it raised it to */
	bool tx_oob;                    /* MSG_OOB was sent: this direction stays on TCP */
	bool tx_moving;                 /* a detach: the peer may come back as another domain; creating retries */
	unsigned int tx_move_tries;     /* creations tried since (FASTIVC_MOVE_RETRIES) */
	unsigned long tx_detach_asked;  /* jiffies | 1: suspending, we asked the receiver to detach (IVC_TX_DETACH) */
	unsigned long owner_events;     /* bit 0: events wait for this socket's owner (sem.c sem_tell_owner) */
	bool lock_handoff;              /* the last release_sock() woke a task waiting for the lock (sock.c
					 * fastivc_release_cb; written under the socket spinlock) */
	bool tx_early;                  /* sender: switched at its first byte, the receiver has not taken it yet */
	bool tx_no_early;               /* sender: an early tunnel of this connection was refused: no more */
	bool tx_early_refused;          /* sender: resending an early tunnel's bytes (then TCP, as a refused CREATE) */
	/* statistics, read without the lock by stats.c */
	u64 tx_bytes, rx_bytes, events_raised, events_received, tx_stalls, violations, bytes_resent;
	u32 tx_channels, tx_channel_size, rx_channels, rx_channel_size;
	struct rcu_head rcu;
};

/* the socket's context, or NULL if the Protocol Monitor has not decided it (monitor.c) */
struct fastivc_sock *fastivc_ctx_of(const struct sock *sk);
#define fastivc_ctx(sk) fastivc_ctx_of(sk)

/* module parameters (fastivc_main.c) */
extern unsigned int fastivc_channels, fastivc_channel_size, fastivc_auto_bytes;
extern bool fastivc_enable;
bool fastivc_port_excluded(u16 port);
extern domid_t fastivc_domid;
extern struct workqueue_struct *fastivc_wq;

/* global counters (stats.c) */
/*
 * Why we (the receiver) said no to a peer's CREATE_TUNNEL, one counter each (/proc/fastivc/stats `rejected_<name>`).
 * The sender sees all of them as one fallback, peer_rejected: these say which of our paths refused.
 */
enum fastivc_reject {
	FIVC_REJ_NO_SOCKET,     /* no established socket for the 4-tuple, even after the retry deadline (sem.c) */
	FIVC_REJ_NO_CONTEXT,    /* a socket, but no context of ours could be attached (another ULP, native, no memory) */
	FIVC_REJ_OTHER_PEER,    /* the event came from another domain than the connection's peer */
	FIVC_REJ_CLOSED,        /* our end is closed */
	FIVC_REJ_HELD,          /* the socket's owner held its lock for SEM_HELD_CREATE_FOR */
	FIVC_REJ_BROKEN,        /* the socket's tunnel mode ended (broken, fallen back) */
	FIVC_REJ_RX_BUSY,       /* a receiving tunnel is open already */
	FIVC_REJ_SUSPENDING,    /* this domain suspends */
	FIVC_REJ_TOO_OFTEN,     /* rx_may_map: another tunnel for one connection too soon or too often */
	FIVC_REJ_MAP_FAILED,    /* the tunnel could not be mapped (geometry, quota, budget, grant map) */
	FIVC_REJ_COUNT
};
extern const char *const fastivc_reject_names[FIVC_REJ_COUNT];

struct fastivc_counters {
	atomic64_t tunnels_created, tunnels_mapped, tunnels_open;
	atomic64_t bytes_tx, bytes_rx, events_raised, events_received, virqs, fetches;
	atomic64_t violations, pages_deferred, lost_wakeups, switch_pushes, kicks_failed, kicks_retried, tick_wakes;
	atomic64_t virq_steers;
	atomic64_t detaches, bytes_resent, suspends;
	atomic64_t owner_events;
	atomic64_t dem_calls, grant_map_calls, grant_unmap_calls; /* our hypercalls, by kind */
	atomic64_t link_setups, link_reuses, link_evictions; /* tunnels set up anew, taken from a link, leaving one */
	atomic64_t early_switches;  /* connections switched at their first byte (sock.c tx_early_ok) */
	atomic64_t early_fin_waits, early_fin_wait_us; /* FINs that waited for the receiver's answer to an early tunnel */
	atomic64_t fallback[FIVC_R_COUNT];
	atomic64_t rejects[FIVC_REJ_COUNT]; /* CREATE_TUNNELs we said no to, by where (fastivc_reject_names) */
};
extern struct fastivc_counters fastivc_stats;
void fastivc_count_fallback(enum fastivc_reason r);
static inline void fastivc_count_reject(enum fastivc_reject why)
{
	atomic64_inc(&fastivc_stats.rejects[why]);
}

/* dem.c */
int dem_info(struct xen_evtmgr_info *info);
int dem_lookup(const struct xen_evtmgr_addr *addr, domid_t *domid);
int dem_raise(struct fastivc_sock *ctx, u32 events, const struct xen_evtmgr_tunnel *tunnel);
int dem_raise_conn(const struct xen_evtmgr_conn *conn, u32 events);
int dem_get_events(struct xen_evtmgr_get_events *ge, u32 room);
int dem_release(struct fastivc_sock *ctx);
int dem_release_conn(const struct xen_evtmgr_conn *conn);
void fastivc_addr_v4(struct xen_evtmgr_addr *a, __be32 ip);
void fastivc_addr_v6(struct xen_evtmgr_addr *a, const struct in6_addr *ip);
static inline bool fastivc_addr_eq(const struct xen_evtmgr_addr *a, const struct xen_evtmgr_addr *b)
{
	return !memcmp(a, b, sizeof(*a));
}
/* "addr:port -> addr:port" of a context, for messages ("[v6]:port" for IPv6) */
#define FIVC_CONN_STR 112
const char *fastivc_conn_str(char *buf, const struct fastivc_sock *ctx);

/* monitor.c */
extern struct list_head fastivc_socks;
extern spinlock_t fastivc_socks_lock;
int fastivc_monitor_init(void);
void fastivc_monitor_exit(void);
struct fastivc_sock *fastivc_attach(struct sock *sk);

/* tunnel.c */
extern unsigned int fastivc_tx_pages_max, fastivc_rx_pages_max, fastivc_peer_pages_max;
unsigned int fastivc_peer_pages(domid_t peer);
unsigned int fastivc_tx_pages(void);
unsigned int fastivc_rx_pages(void);
struct ivc_tunnel *ivc_tunnel_create_tx(domid_t peer, const struct xen_evtmgr_addr *raddr, u32 nr_channels,
					u32 channel_size, struct xen_evtmgr_tunnel *info, enum fastivc_reason *why,
					bool *evicted, bool fault_nomem);
struct ivc_tunnel *ivc_tunnel_map_rx(domid_t peer, const struct xen_evtmgr_addr *raddr,
				     const struct xen_evtmgr_tunnel *info, int *why, bool *from_link);
void ivc_tunnel_release(struct ivc_tunnel *t);
void ivc_tunnel_let_go(struct ivc_tunnel *t);
void ivc_tunnel_free(struct ivc_tunnel *t);
bool ivc_tunnel_end_grants(struct ivc_tunnel *t);
void ivc_tunnel_ask_back(struct ivc_tunnel *t);
void ivc_tunnel_release_drain(void);
void ivc_tunnel_release_kept(void);
bool fastivc_fault_keeping(void);
unsigned int ivc_tunnel_releases_waiting(void);
int ivc_copy_to_chan(struct ivc_tunnel *t, u32 chan, u32 off, struct iov_iter *from, u32 len);
int ivc_copy_from_chan(struct ivc_tunnel *t, u32 chan, u32 off, struct iov_iter *to, u32 len);

/* link.c */
extern unsigned int fastivc_link_idle_ms;
bool ivc_link_enabled(void);
void ivc_link_count(domid_t peer, bool reuse);
struct ivc_tunnel *ivc_link_take_tx(domid_t peer, u32 nr_channels, u32 channel_size);
bool ivc_link_pool_tx(struct ivc_tunnel *t);
bool ivc_link_may_park(const struct ivc_tunnel *t);
bool ivc_link_park_rx(struct ivc_tunnel *t);
struct ivc_tunnel *ivc_link_take_rx(domid_t peer, const struct xen_evtmgr_tunnel *info);
void ivc_link_forget_rx(domid_t peer, const struct xen_evtmgr_tunnel *info);
bool ivc_link_parked(domid_t peer, const struct xen_evtmgr_tunnel *info);
unsigned int ivc_link_evict(domid_t peer, bool all_peers, bool sender);
void ivc_link_peer_gone(domid_t peer);
void ivc_link_flush(void);
void ivc_link_totals(unsigned int *pooled_n, unsigned int *parked_n, unsigned int *pages);
bool ivc_link_peer(domid_t peer, unsigned int *pooled_n, unsigned int *parked_n, u64 *setups, u64 *reuses);
bool ivc_link_next_peer(long *peer);
void ivc_link_init(void);
void ivc_link_exit(void);
void ivc_link_free(void);

/* geometry.c */
void fastivc_geometry_for(u32 bytes, u32 *nr_channels, u32 *channel_size);
void fastivc_geometry(const struct sock *sk, u32 *nr_channels, u32 *channel_size);
bool fastivc_geometry_smaller(u32 *nr_channels, u32 *channel_size);

/* sock.c */
extern struct proto fastivc_tunnel_prot, fastivc_tunnel6_prot;
void fastivc_sock_build(const struct proto *base, const struct proto *base6, const struct proto_ops *base_ops);
/* the kernel's own proto of the socket's family (what a socket gets back at close or unload) */
static inline struct proto *fastivc_tcp_proto(const struct sock *sk)
{
	extern struct proto tcpv6_prot;

	return sk->sk_family == AF_INET6 ? &tcpv6_prot : &tcp_prot;
}
void fastivc_tx_event(struct fastivc_sock *ctx, u32 events);
void fastivc_rx_create(struct fastivc_sock *ctx, const struct xen_evtmgr_event *ev, bool by_owner,
		       bool lock_checked);
bool fastivc_rx_create_busy(struct fastivc_sock *ctx, const struct xen_evtmgr_event *ev, bool by_owner, bool *looked);
bool fastivc_sem_retries_pending(void);
void fastivc_rx_event(struct fastivc_sock *ctx, u32 events);
bool fastivc_rx_needs_release(struct fastivc_sock *ctx);
void fastivc_sem_queue_release(struct fastivc_sock *ctx);
void fastivc_sem_owner_events(struct sock *sk, struct fastivc_sock *ctx);
void fastivc_sem_kick(void);
void fastivc_break(struct fastivc_sock *ctx, int code);
void fastivc_peer_gone(struct fastivc_sock *ctx);
void fastivc_wake(struct sock *sk, __poll_t mask);
void fastivc_sock_tick(struct fastivc_sock *ctx);
void fastivc_sock_retry_kicks(struct fastivc_sock *ctx);
void fastivc_sock_wake_check(struct fastivc_sock *ctx);
void fastivc_sock_suspend(struct fastivc_sock *ctx);
bool fastivc_sock_detach_answered(struct fastivc_sock *ctx);
bool fastivc_sock_suspend_finish(struct fastivc_sock *ctx);
bool fastivc_sock_needs_tick(const struct fastivc_sock *ctx);
bool fastivc_sock_peer_moved(struct fastivc_sock *ctx, domid_t peer);

/* lifecycle.c */
extern bool fastivc_suspending;
int fastivc_lifecycle_init(void);
void fastivc_lifecycle_exit(void);

/* sem.c */
int fastivc_sem_init(void);
void fastivc_sem_exit(void);
void sem_steer_virq(void);
int sem_virq_cpu(void);

/* stats.c */
int fastivc_stats_init(void);
void fastivc_stats_exit(void);
void fastivc_stats_mirror(void);

#endif /* FASTIVC_H */
