// SPDX-License-Identifier: GPL-2.0-only
/*
 * sem.c: the Socket Event Manager (thesis 3.4.6.2). VIRQ_EVTMGR says "you have events"; one work item fetches them
 * all (get_events returns every pending record, max_batch at a time, `more` says whether to call again), finds the
 * socket of each by its 4-tuple in the TCP established hash (the thesis' tcp_v4_lookup) and hands the events to it:
 *   S->R events (CREATE_TUNNEL, SEND_CLOSE_TUNNEL, SEND_DATA) concern the socket's receiving tunnel,
 *   R->S events (REJECT_TUNNEL, RECV_CLOSE_TUNNEL, RECV_GET_DATA) its sending tunnel.
 * Data events (SEND_DATA, RECV_GET_DATA) only wake the socket's waiters (the channel headers carry the state), so
 * they are handled right in the fetch, in softirq context (a tasklet scheduled by the VIRQ): no thread has to be
 * scheduled between the interrupt and the application's wake-up. Events that change a tunnel (CREATE, REJECT,
 * the closes) need the socket lock and may sleep (mapping grants): the fetch queues them for a work item.
 *
 * As the DEM's header requires, the SEM fetches once right after binding the VIRQ and then once a second from a
 * timer (Xen may skip a signal), which also drives the tunnels' timeouts and the statistics mirror.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/sched/isolation.h>
#include <linux/syscore_ops.h>
#include <linux/moduleparam.h>
#include <linux/timer.h>
#include <net/tcp.h>
#include <net/inet_hashtables.h>
#include <net/inet6_hashtables.h>
#include <linux/user_namespace.h>
#include <xen/events.h>
#include "fastivc.h"

/* Events fetched per get_events call: the DEM's max_batch (64), ~6.5 KiB of buffer. */
#define SEM_BATCH 64
/*
 * Control events waiting for the work item. The DEM holds at most max_pending_per_domain (512) records for us, and
 * each fetch returns a record once, so twice that never overflows unless the work item stalls; then the event is
 * dropped and counted (the peer's tunnel then times out or fails, the connection stays on TCP).
 */
#define SEM_CTL_RING 1024

static int sem_irq = -1;
static struct xen_evtmgr_get_events *sem_buf;
static struct xen_evtmgr_event *ctl_ring;
static unsigned int ctl_head, ctl_tail;
static DEFINE_SPINLOCK(ctl_lock);
static atomic64_t ctl_dropped;
static struct work_struct sem_work, tick_work;
static struct tasklet_struct sem_tasklet;
static struct timer_list sem_timer;
static bool sem_stopping;

/* A CREATE_TUNNEL for a connection we have no socket for: say no, so the sender stays on TCP without waiting. */
static void reject_conn(const struct xen_evtmgr_event *ev, enum fastivc_reject why)
{
	fastivc_count_reject(why);
	dem_raise_conn(&ev->conn, EVTMGR_EVENT_REJECT_TUNNEL);
	ivc_link_forget_rx(ev->peer, &ev->tunnel); /* a parked tunnel it named goes: its sender can end its grants */
}

/*
 * A CREATE_TUNNEL can arrive before our side of the connection is established: the client sends (and raises) as
 * soon as it has the SYN-ACK, while our end may still be a request socket waiting for the final ACK. Such events
 * are retried every SEM_RETRY_MS for up to SEM_RETRY_FOR (well within the sender's 5 s), then rejected. Bounded
 * list: beyond SEM_RETRY_MAX the event is rejected at once.
 *
 * The same list holds the control events of a socket whose lock its owner holds (sem_trylock_sock): one task that
 * keeps its socket locked (a send faulting on slow user memory: userfaultfd, FUSE, NFS) must not stall the control
 * events of every other socket. Those are retried every SEM_RETRY_MS for as long as the owner holds the lock, and a
 * later event for the same connection waits behind them, so a connection's events keep their order. Only when the
 * list is full is an event dispatched by waiting for the lock.
 */
#define SEM_RETRY_MS 20
#define SEM_RETRY_FOR (HZ)
#define SEM_RETRY_MAX 256
struct sem_retry {
	struct list_head node;
	unsigned long deadline; /* a socket not yet established: retried until then, then rejected */
	unsigned long held_until; /* a held socket: a CREATE still held then is rejected (the sender waits 5 s) */
	struct xen_evtmgr_event ev;
};
/* How long a CREATE_TUNNEL waits for a socket its owner holds: well within the sender's FASTIVC_CREATE_TIMEOUT. */
#define SEM_HELD_CREATE_FOR (4 * HZ)
static atomic64_t retry_dropped; /* events dropped because the retry list was full */
static LIST_HEAD(retry_list); /* only the control work and the retry work touch it: both on fastivc_wq, serialised
				 by retry_lock */
static DEFINE_MUTEX(retry_lock);
static unsigned int retry_count;
static struct delayed_work retry_work;

/*
 * Drops our DEM record of the event's connection: it is not one we run a tunnel on (gone, closed, native). Such
 * records (the peer's close events after our own close, for one) would otherwise stay for good, each counting
 * against the peer's share of our records (256); once that is used up its raises fail with -ENOSPC.
 */
static void forget_conn(const struct xen_evtmgr_event *ev)
{
	dem_release_conn(&ev->conn);
}

/*
 * lock_sock() unless the socket's owner holds it (process context): the SEM and its tick never wait for a socket's
 * owner. true: locked (release_sock() as usual).
 */
static bool sem_trylock_sock(struct sock *sk)
{
	bool ok;

	spin_lock_bh(&sk->sk_lock.slock);
	ok = !sock_owned_by_user_nocheck(sk);
	if (ok) {
		sk->sk_lock.owned = 1; /* as lock_sock_nested() on its fast path */
		mutex_acquire(&sk->sk_lock.dep_map, 0, 1, _RET_IP_);
	}
	spin_unlock_bh(&sk->sk_lock.slock);
	return ok;
}

/*
 * The socket of a DEM connection (ours: me:lport, the peer's: peer:rport), with a reference, or NULL; a full socket,
 * a TIME_WAIT or a request socket, as the lookup finds it. The initial namespace first, then the other network
 * namespaces the host's root made (owned by the initial user namespace: the only ones whose sockets the monitor
 * tunnels, see classify()): a container's routed address belongs to this domain in the DEM (README "Containers"),
 * and its sockets live in the container's namespace. The same 4-tuple in two containers is ambiguous: neither is
 * given the event (NULL). The walk costs one hash lookup per such namespace, for events of connections we do not
 * know too (a peer can raise those): bounded by the DEM's pending limit per fetch.
 */
static struct sock *lookup_in(struct net *net, const struct xen_evtmgr_conn *c)
{
	struct inet_hashinfo *h = net->ipv4.tcp_death_row.hashinfo;
	__be32 me, peer;

	if (c->src.family == EVTMGR_AF_INET6)
		return __inet6_lookup_established(net, h, (const struct in6_addr *)c->dst.addr, htons(c->dst_port),
						  (const struct in6_addr *)c->src.addr, c->src_port, 0, 0);
	memcpy(&me, c->src.addr, 4);
	memcpy(&peer, c->dst.addr, 4);
	return __inet_lookup_established(net, h, peer, htons(c->dst_port), me, c->src_port, 0, 0);
}

/* Both ends IPv4, or both IPv6 (the DEM refuses anything else; a peer's record is checked all the same). */
static bool conn_family_ok(const struct xen_evtmgr_conn *c)
{
	return c->src.family == c->dst.family &&
	       (c->src.family == EVTMGR_AF_INET || (c->src.family == EVTMGR_AF_INET6 && IS_ENABLED(CONFIG_IPV6)));
}

static struct sock *sem_lookup(const struct xen_evtmgr_conn *c)
{
	struct sock *sk, *other;
	struct net *net;

	rcu_read_lock(); /* the established hash is walked under RCU */
	sk = lookup_in(&init_net, c);
	if (!sk) {
		for_each_net_rcu(net) {
			if (net_eq(net, &init_net) || net->user_ns != &init_user_ns)
				continue;
			other = lookup_in(net, c);
			if (!other)
				continue;
			if (sk) { /* a second namespace has it too */
				sock_gen_put(other);
				sock_gen_put(sk);
				sk = NULL;
				break;
			}
			sk = other;
		}
	}
	rcu_read_unlock();
	return sk;
}

/*
 * The events of one connection, for its socket sk, locked (by the SEM, or by its owner: fastivc_sem_owner_events).
 * -EINPROGRESS if they may and must wait, untouched, for a task that waits for the lock (fastivc_rx_create_busy): the
 * caller keeps them on the retry list and leaves them to that task if it is ours (owner bit), or to the retry work.
 */
static int sem_handle(struct sock *sk, struct xen_evtmgr_event *ev, bool may_wait, bool by_owner)
{
	u32 events = ev->events;
	struct fastivc_sock *ctx;
	bool looked = false;
	int rc = 0;

	ctx = (events & EVTMGR_EVENT_CREATE_TUNNEL) ? fastivc_attach(sk) : fastivc_ctx(sk);
	/* a tunnel from the connection's peer, restored or migrated as another domain (lifecycle.c) */
	if (ctx && ctx->peer != ev->peer && (events & EVTMGR_EVENT_CREATE_TUNNEL))
		fastivc_sock_peer_moved(ctx, ev->peer);
	if (!ctx || ctx->peer != ev->peer || READ_ONCE(ctx->mode) == FIVC_MODE_CLOSED) {
		/*
		 * Not a connection we run a tunnel on: not ours (another ULP, not established, native), the event comes
		 * from another domain than the peer's, or our end is closed (it released its record at close, late
		 * events made a new one).
		 */
		if (events & EVTMGR_EVENT_CREATE_TUNNEL)
			reject_conn(ev, !ctx ? FIVC_REJ_NO_CONTEXT : ctx->peer != ev->peer ? FIVC_REJ_OTHER_PEER :
					FIVC_REJ_CLOSED);
		forget_conn(ev);
		return 0;
	}
	if ((events & EVTMGR_EVENT_CREATE_TUNNEL) && may_wait && fastivc_rx_create_busy(ctx, ev, by_owner, &looked)) {
		/*
		 * The CREATE and what follows it for our receiving side wait; what concerns our own sending tunnel
		 * (REJECT, RECV_CLOSE, RECV_GET_DATA) is run now and taken off the record.
		 */
		events &= EVTMGR_EVENTS_TO_SENDER;
		ev->events &= ~EVTMGR_EVENTS_TO_SENDER;
		rc = -EINPROGRESS;
	}
	WRITE_ONCE(ctx->events_received, ctx->events_received + hweight32(events));
	if (events & EVTMGR_EVENT_CREATE_TUNNEL)
		fastivc_rx_create(ctx, ev, by_owner, looked); /* looked: for lock waiters, above */
	if (events & (EVTMGR_EVENT_SEND_CLOSE_TUNNEL | EVTMGR_EVENT_SEND_DATA))
		fastivc_rx_event(ctx, events);
	if (events & EVTMGR_EVENTS_TO_SENDER)
		fastivc_tx_event(ctx, events);
	return rc;
}

/*
 * Returns -EAGAIN if a CREATE_TUNNEL found no established socket yet and `final` is false, -EINPROGRESS if it waits
 * for a task that waits for the socket's lock (sem_handle), -EBUSY if the socket's
 * owner holds its lock (the caller retries later; the owner is told, see fastivc_sem_owner_events).
 */
static int sem_dispatch(struct xen_evtmgr_event *ev, bool final)
{
	u32 events = ev->events;
	struct sock *sk;
	int rc;

	if (!conn_family_ok(&ev->conn))
		return 0;
	sk = sem_lookup(&ev->conn);
	if (sk && sk->sk_state == TCP_TIME_WAIT) {
		inet_twsk_put(inet_twsk(sk));
		sk = NULL;
	} else if (sk && sk->sk_state == TCP_NEW_SYN_RECV) {
		reqsk_put(inet_reqsk(sk));
		sk = NULL;
	}
	if (!sk) {
		if (events & EVTMGR_EVENT_CREATE_TUNNEL) {
			if (!final)
				return -EAGAIN;
			reject_conn(ev, FIVC_REJ_NO_SOCKET);
		}
		forget_conn(ev);
		return 0;
	}
	/*
	 * A tunnel from the pair's link (it may be switched at its first byte) for a socket not accepted yet (no struct
	 * socket: its operations cannot be made ours, and a reader that splices would wait in TCP's own code for bytes
	 * that come through the tunnel): the CREATE waits until accept(), and the socket's first call through us runs it
	 * (monitor.c sets its owner bit); a second at most, then it is decided as it is. A new tunnel is mapped at once.
	 */
	if ((events & EVTMGR_EVENT_CREATE_TUNNEL) && !final && !READ_ONCE(sk->sk_socket) &&
	    ivc_link_parked(ev->peer, &ev->tunnel)) {
		sock_put(sk);
		return -EAGAIN;
	}
	if (!sem_trylock_sock(sk)) {
		sock_put(sk);
		return -EBUSY;
	}
	rc = sem_handle(sk, ev, !final, false);
	release_sock(sk);
	sock_put(sk);
	return rc;
}

static bool same_conn(const struct xen_evtmgr_event *a, const struct xen_evtmgr_event *b)
{
	return a->conn.src_port == b->conn.src_port && a->conn.dst_port == b->conn.dst_port &&
	       !memcmp(&a->conn.src, &b->conn.src, sizeof(a->conn.src)) &&
	       !memcmp(&a->conn.dst, &b->conn.dst, sizeof(a->conn.dst));
}

/* Is an earlier event of the same connection waiting in the retry list? Then this one waits behind it. */
static bool retry_has_conn(const struct xen_evtmgr_event *ev)
{
	struct sem_retry *r;
	bool found = false;

	mutex_lock(&retry_lock);
	if (retry_count)
		list_for_each_entry(r, &retry_list, node)
			if (same_conn(&r->ev, ev)) {
				found = true;
				break;
			}
	mutex_unlock(&retry_lock);
	return found;
}

/*
 * A held socket's events wait in the retry list, and its owner is told (ctx->owner_events): it runs them itself the
 * next time it passes through this module's send or receive path with the lock held (fastivc_sem_owner_events), as
 * TCP's timers leave their work to the owner of a locked socket (tcp_release_cb). Without that, a reader that keeps
 * its socket locked (a stream: one recvmsg after the other) learnt of its new tunnel only when a retry happened to
 * find the lock free, tens of milliseconds and megabytes of TCP later. A socket we have no context for yet has no
 * owner of ours: the retry list alone serves it.
 */
static void sem_tell_owner(const struct xen_evtmgr_event *ev)
{
	struct fastivc_sock *ctx;
	struct sock *sk;

	if (!conn_family_ok(&ev->conn))
		return;
	sk = sem_lookup(&ev->conn);
	if (!sk)
		return;
	if (sk_fullsock(sk)) {
		bool owned = true;

		rcu_read_lock();
		ctx = fastivc_ctx(sk);
		if (ctx) {
			set_bit(0, &ctx->owner_events);
			/*
			 * An owner that lets go of the lock after this sees the bit in its release_cb (under the same
			 * spinlock, before it gives up ownership) and kicks us (fastivc_sem_kick), or hands the socket
			 * to a task waiting for its lock; one that let go before, with nobody waiting, did not: the
			 * retry is run now rather than at its interval.
			 */
			spin_lock_bh(&sk->sk_lock.slock);
			owned = sock_owned_by_user_nocheck(sk) || waitqueue_active(&sk->sk_lock.wq);
			spin_unlock_bh(&sk->sk_lock.slock);
		}
		rcu_read_unlock();
		if (!owned)
			fastivc_sem_kick();
	}
	sock_gen_put(sk);
}

/*
 * The retry work now (any context): an owner let go of a socket with events left to it (sock.c
 * fastivc_release_cb), as tcp_release_cb() runs the timer work TCP left to a socket's owner.
 */
void fastivc_sem_kick(void)
{
	mod_delayed_work(fastivc_wq, &retry_work, 0);
}

/* Any context, racy: does any event wait in the retry list? (x86: the count is stored before the owner bit is set) */
bool fastivc_sem_retries_pending(void)
{
	return READ_ONCE(retry_count) != 0;
}

/*
 * The owner of sk (lock held, process context), told by sem_tell_owner(): its connection's events that wait in the
 * retry list, in their order. Never waits for retry_lock (the retry work may hold it while it maps other sockets'
 * tunnels, and a MSG_DONTWAIT call must not sleep on it): if it is taken, the bit is set again for the next pass, and
 * the retry work gets the events meanwhile.
 */
void fastivc_sem_owner_events(struct sock *sk, struct fastivc_sock *ctx)
{
	struct sem_retry *r, *tmp;
	struct sock *found;

	if (!test_and_clear_bit(0, &ctx->owner_events))
		return;
	if (!mutex_trylock(&retry_lock)) {
		set_bit(0, &ctx->owner_events);
		return;
	}
	list_for_each_entry_safe(r, tmp, &retry_list, node) {
		if (r->ev.conn.src_port != ctx->lport || r->ev.conn.dst_port != ctx->rport)
			continue;
		found = sem_lookup(&r->ev.conn); /* the event's socket is this one (not another namespace's) */
		if (found)
			sock_gen_put(found);
		if (found != sk)
			continue;
		/* another task waits for the lock: that task if it is ours, or the retry work, runs them next */
		if (sem_handle(sk, &r->ev, !time_after(jiffies, r->deadline), true) == -EINPROGRESS) {
			set_bit(0, &ctx->owner_events);
			break; /* and the connection's later events wait behind them */
		}
		list_del(&r->node);
		retry_count--;
		atomic64_inc(&fastivc_stats.owner_events);
		kfree(r);
	}
	mutex_unlock(&retry_lock);
}

static void sem_retry_later(const struct xen_evtmgr_event *ev)
{
	struct xen_evtmgr_event copy = *ev;
	struct sem_retry *r = NULL;

	mutex_lock(&retry_lock);
	if (retry_count < SEM_RETRY_MAX)
		r = kmalloc(sizeof(*r), GFP_KERNEL);
	if (r) {
		r->ev = *ev;
		r->deadline = jiffies + SEM_RETRY_FOR;
		r->held_until = jiffies + SEM_HELD_CREATE_FOR;
		list_add_tail(&r->node, &retry_list);
		retry_count++;
	}
	mutex_unlock(&retry_lock);
	if (r) {
		queue_delayed_work(fastivc_wq, &retry_work, msecs_to_jiffies(SEM_RETRY_MS));
		return;
	}
	/*
	 * The list is full (or no memory): as a full control ring, the event is dropped and counted (a sender then times
	 * out and stays on TCP), unless it can be finished at once without waiting: a CREATE for no socket is rejected.
	 * Never dispatched by waiting for a held socket, and never ahead of its own connection's queued events.
	 */
	if (retry_has_conn(ev) || sem_dispatch(&copy, true) == -EBUSY) {
		atomic64_inc(&retry_dropped);
		pr_warn_ratelimited("fastivc: control event list full: an event (%#x) was dropped\n", ev->events);
	}
}


/* retry_lock held: does an entry before r hold an event of the same connection? */
static bool retry_blocked(struct sem_retry *r)
{
	struct sem_retry *e;

	list_for_each_entry(e, &retry_list, node) {
		if (e == r)
			return false;
		if (same_conn(&e->ev, &r->ev))
			return true;
	}
	return false;
}

static void sem_retry(struct work_struct *w)
{
	struct sem_retry *r, *tmp;
	bool more;

	mutex_lock(&retry_lock);
	list_for_each_entry_safe(r, tmp, &retry_list, node) {
		int rc;

		/*
		 * Behind an earlier event of its connection that still waits: keep the order. A socket its owner holds
		 * is retried for as long as it is held (-EBUSY); a socket not yet established until the deadline.
		 */
		if (retry_blocked(r))
			continue;
		rc = sem_dispatch(&r->ev, time_after(jiffies, r->deadline));
		if (rc == -EBUSY && (r->ev.events & EVTMGR_EVENT_CREATE_TUNNEL) && time_after(jiffies, r->held_until)) {
			/*
			 * Held for seconds: say no to the tunnel now, so its sender stays on TCP at once rather than at its
			 * timeout. The record may carry other events of the connection (the DEM merges them): they wait on.
			 */
			reject_conn(&r->ev, FIVC_REJ_HELD);
			r->ev.events &= ~EVTMGR_EVENT_CREATE_TUNNEL;
			rc = r->ev.events ? -EBUSY : 0;
		}
		if (rc == -EBUSY || rc == -EINPROGRESS) /* on the list already: the owner finds it */
			sem_tell_owner(&r->ev);
		if (rc == -EAGAIN || rc == -EBUSY || rc == -EINPROGRESS)
			continue;
		list_del(&r->node);
		retry_count--;
		kfree(r);
	}
	more = !list_empty(&retry_list);
	mutex_unlock(&retry_lock);
	if (more)
		queue_delayed_work(fastivc_wq, &retry_work, msecs_to_jiffies(SEM_RETRY_MS));
}

/*
 * softirq: the socket's waiters learn that a channel was published (SEND_DATA) or freed (RECV_GET_DATA). Returns
 * true if the event must also go to process context: a SEND_DATA that only sealed a channel the reader has read to
 * its end (the sender's lingering close or MSG_OOB waits for it back; a poller is not told, see
 * fastivc_rx_needs_release()).
 */
static bool sem_wake_data(const struct xen_evtmgr_event *ev)
{
	__poll_t mask = 0;
	struct fastivc_sock *ctx;
	bool release = false;
	struct sock *sk;

	if (!conn_family_ok(&ev->conn))
		return false;
	sk = sem_lookup(&ev->conn);
	rcu_read_lock();
	if (sk && !sk_fullsock(sk)) { /* TIME_WAIT: our end is gone */
		sock_gen_put(sk);
		sk = NULL;
	}
	ctx = sk ? fastivc_ctx(sk) : NULL;
	if (ctx && ctx->peer == ev->peer && READ_ONCE(ctx->mode) != FIVC_MODE_CLOSED) {
		WRITE_ONCE(ctx->events_received, ctx->events_received + hweight32(ev->events));
		if (ev->events & EVTMGR_EVENT_SEND_DATA) {
			mask |= EPOLLIN | EPOLLRDNORM;
			release = fastivc_rx_needs_release(ctx);
		}
		if (ev->events & EVTMGR_EVENT_RECV_GET_DATA)
			mask |= EPOLLOUT | EPOLLWRNORM;
		fastivc_wake(sk, mask);
	} else {
		forget_conn(ev); /* as sem_dispatch() */
	}
	rcu_read_unlock();
	if (sk)
		sock_gen_put(sk);
	return release;
}

/* The fetch: every pending record, max_batch at a time. Softirq (tasklet): never two at once. */
static void sem_fetch(unsigned long unused)
{
	const u32 ctl_bits = EVTMGR_EVENT_CREATE_TUNNEL | EVTMGR_EVENT_REJECT_TUNNEL | EVTMGR_EVENT_SEND_CLOSE_TUNNEL |
			     EVTMGR_EVENT_RECV_CLOSE_TUNNEL;
	u32 i, rounds = 0;
	bool queued = false;
	int rc;

	do {
		rc = dem_get_events(sem_buf, SEM_BATCH);
		if (rc) {
			pr_warn_ratelimited("fastivc: get_events failed (%d)\n", rc);
			break;
		}
		for (i = 0; i < sem_buf->nr && i < SEM_BATCH; i++) {
			const struct xen_evtmgr_event *ev = &sem_buf->ev[i];

			atomic64_add(hweight32(ev->events), &fastivc_stats.events_received);
			if (!(ev->events & ctl_bits) && !sem_wake_data(ev))
				continue;
			spin_lock(&ctl_lock);
			if (ctl_head - ctl_tail < SEM_CTL_RING) {
				ctl_ring[ctl_head++ % SEM_CTL_RING] = *ev;
				queued = true;
			} else {
				atomic64_inc(&ctl_dropped);
			}
			spin_unlock(&ctl_lock);
		}
		/* bounded: the DEM holds at most max_pending_per_domain records for us */
	} while (sem_buf->more && ++rounds < 64);
	if (sem_buf->more)
		tasklet_schedule(&sem_tasklet); /* the rest next time round, so softirq time stays bounded */
	if (queued)
		queue_work(fastivc_wq, &sem_work);
}

/*
 * A poller found the receiving tunnel holding only a channel read to its end and then sealed: the seal's SEND_DATA
 * may have come before the poller asked for one, and then none is coming. Its release needs the socket lock, so the
 * poller queues the event the seal would have raised, for the work below (fastivc_rx_event). Once per such state.
 */
void fastivc_sem_queue_release(struct fastivc_sock *ctx)
{
	struct xen_evtmgr_event ev;
	bool queued = false;

	if (test_and_set_bit(0, &ctx->rx_release_queued))
		return;
	memset(&ev, 0, sizeof(ev));
	ev.conn.src = ctx->laddr;
	ev.conn.dst = ctx->raddr;
	ev.conn.src_port = ctx->lport;
	ev.conn.dst_port = ctx->rport;
	ev.peer = ctx->peer;
	ev.events = EVTMGR_EVENT_SEND_DATA;
	spin_lock_bh(&ctl_lock);
	if (ctl_head - ctl_tail < SEM_CTL_RING) {
		ctl_ring[ctl_head++ % SEM_CTL_RING] = ev;
		queued = true;
	}
	spin_unlock_bh(&ctl_lock);
	if (queued)
		queue_work(fastivc_wq, &sem_work);
	else
		clear_bit(0, &ctx->rx_release_queued);
}

/* Process context: the control events, each under its socket's lock. */
static void sem_control(struct work_struct *w)
{
	struct xen_evtmgr_event ev;
	int rc;

	for (;;) {
		spin_lock_bh(&ctl_lock);
		if (ctl_tail == ctl_head) {
			spin_unlock_bh(&ctl_lock);
			break;
		}
		ev = ctl_ring[ctl_tail++ % SEM_CTL_RING];
		spin_unlock_bh(&ctl_lock);
		if (retry_has_conn(&ev)) {
			sem_retry_later(&ev); /* behind its connection's earlier events */
			sem_tell_owner(&ev);
		} else {
			rc = sem_dispatch(&ev, false);
			if (rc < 0) /* -EAGAIN: not established yet; -EBUSY: held; -EINPROGRESS: waited for */
				sem_retry_later(&ev);
			if (rc == -EBUSY || rc == -EINPROGRESS)
				sem_tell_owner(&ev);
		}
		cond_resched();
	}
}

/*
 * VIRQ steering. VIRQ_EVTMGR is a global VIRQ: Xen delivers it to the one vCPU the guest bound it to, and the tasklet
 * runs there. A wake-up is cheapest when that is the vCPU the woken task sleeps on: it is then local, with no
 * reschedule IPI (an event-channel hypercall, then a second blocked vCPU for Xen to schedule). Measured in the lab
 * (2-vCPU domUs, 1 B round trips): 560-700/s with the VIRQ left where it was bound, 850-970/s steered, in one boot.
 * So a task about to sleep on a tunnel calls sem_steer_virq(), which moves the VIRQ to its CPU (irq_set_affinity:
 * EVTCHNOP_bind_vcpu; the event channel is masked around the move and a pending event is raised again on the new
 * vCPU, so none is lost), as Receive Flow Steering moves a flow's processing to the CPU of the application that
 * reads it.
 *  - At most one move per SEM_STEER_INTERVAL (each is a hypercall): waiters on different CPUs make it move at most
 *    50 times a second, and a move in progress is never waited for (steering is a hint: mutex_trylock).
 *  - Only to a CPU that may take managed interrupts (housekeeping: not isolated with isolcpus=managed_irq).
 *  - An administrator's /proc/irq/N/smp_affinity still works; virq_steer=0 stops steering and moves it back to CPU 0.
 *  - Xen binds global VIRQs to vCPU 0 only (EVTCHNOP_bind_virq refuses another vCPU), and Linux binds them again
 *    after a save/restore or migration from its per-CPU records: before the domain suspends (syscore suspend, on
 *    CPU 0 with the other CPUs stopped) and before the unbind at module exit, the VIRQ goes back to CPU 0.
 */
#define SEM_STEER_INTERVAL (HZ / 50)
static bool virq_steer = true;
static DEFINE_MUTEX(steer_lock); /* held around a move, and by exit around the unbind: sem_irq stays bound */
static unsigned long steer_at;	 /* jiffies of the last move; under steer_lock (jiffies never reads 0 on 64-bit) */

/* Moves VIRQ_EVTMGR to cpu. steer_lock held, or every other CPU stopped (syscore). */
static void sem_virq_to(int cpu)
{
	if (sem_irq >= 0 && irq_set_affinity(sem_irq, cpumask_of(cpu)) == 0)
		atomic64_inc(&fastivc_stats.virq_steers);
}

static int virq_steer_set(const char *val, const struct kernel_param *kp)
{
	int rc = param_set_bool(val, kp);

	if (rc == 0 && !READ_ONCE(virq_steer)) {
		mutex_lock(&steer_lock);
		sem_virq_to(0);
		mutex_unlock(&steer_lock);
	}
	return rc;
}

static const struct kernel_param_ops virq_steer_ops = {
	.set = virq_steer_set,
	.get = param_get_bool,
};
module_param_cb(virq_steer, &virq_steer_ops, &virq_steer, 0644);
MODULE_PARM_DESC(virq_steer, "move VIRQ_EVTMGR to the vCPU of the task that waits on a tunnel (default 1; 0 puts it back on vCPU 0)");

void sem_steer_virq(void)
{
	const struct cpumask *eff;
	int cpu;

	if (!READ_ONCE(virq_steer) || !mutex_trylock(&steer_lock))
		return;
	cpu = raw_smp_processor_id(); /* where this task is about to sleep; it may migrate later, then it steers again */
	if (sem_irq < 0 || READ_ONCE(sem_stopping) || !housekeeping_test_cpu(cpu, HK_TYPE_MANAGED_IRQ))
		goto out;
	eff = irq_get_effective_affinity_mask(sem_irq);
	if (!eff || cpumask_test_cpu(cpu, eff))
		goto out;
	if (steer_at && time_before(jiffies, steer_at + SEM_STEER_INTERVAL))
		goto out;
	steer_at = jiffies;
	sem_virq_to(cpu);
out:
	mutex_unlock(&steer_lock);
}

/* The vCPU VIRQ_EVTMGR is delivered to now, or -1 (statistics; process context). */
int sem_virq_cpu(void)
{
	const struct cpumask *eff;
	int cpu = -1;

	mutex_lock(&steer_lock);
	if (sem_irq >= 0) {
		eff = irq_get_effective_affinity_mask(sem_irq);
		cpu = eff ? cpumask_first(eff) : -1;
		if (cpu >= nr_cpu_ids)
			cpu = -1;
	}
	mutex_unlock(&steer_lock);
	return cpu;
}

/* Xen's suspend path (drivers/xen/manage.c: stop_machine on CPU 0, then syscore_suspend): back to vCPU 0, see above. */
static int sem_syscore_suspend(void)
{
	sem_virq_to(0);
	return 0;
}

/*
 * ... and back (restored, migrated, or the suspend cancelled): a restored domain may have another domain id, and the
 * DEM gives our addresses to that id. The monitor compares the owner of a socket's own address with fastivc_domid, so
 * it must be the id we have now (one DEM call; CPU 0, interrupts off).
 */
static void sem_syscore_resume(void)
{
	struct xen_evtmgr_info info;

	if (!dem_info(&info) && info.domid != READ_ONCE(fastivc_domid)) {
		pr_info("fastivc: this domain is now domain %u (was %u)\n", info.domid, fastivc_domid);
		WRITE_ONCE(fastivc_domid, info.domid);
	}
}

static struct syscore_ops sem_syscore_ops = {
	.suspend = sem_syscore_suspend,
	.resume = sem_syscore_resume,
};

static irqreturn_t sem_virq(int irq, void *dev)
{
	atomic64_inc(&fastivc_stats.virqs);
	tasklet_schedule(&sem_tasklet);
	return IRQ_HANDLED;
}

/* Sockets handled per tick and kind of work (the rest wait for the next tick). */
#define SEM_TICK_BATCH 32

/*
 * Calls act() on each socket whose context match() selects, at most SEM_TICK_BATCH of them, each under its socket
 * lock (taken after fastivc_socks_lock is dropped: the lock hierarchy puts the socket lock outside it). When more
 * match, the next call starts after the last one handled (*rotor: its id), so no socket waits behind the same first
 * ones.
 */
static void sem_each_sock(bool (*match)(const struct fastivc_sock *ctx, const void *arg), const void *arg,
			  void (*act)(struct fastivc_sock *ctx), u64 *rotor)
{
	struct sock *todo[SEM_TICK_BATCH];
	struct fastivc_sock *ctx;
	u64 after = rotor ? *rotor : 0, last = 0;
	int n = 0, i, pass;

	/*
	 * Contexts are appended to the list with growing ids: the first pass takes the matches after the last one
	 * handled, the second wraps around to the start for what room is left.
	 */
	spin_lock_bh(&fastivc_socks_lock);
	for (pass = 0; pass < 2 && n < ARRAY_SIZE(todo); pass++) {
		list_for_each_entry(ctx, &fastivc_socks, node) {
			if (n == ARRAY_SIZE(todo))
				break;
			if ((pass == 0) != (ctx->id > after) || !match(ctx, arg))
				continue;
			if (refcount_inc_not_zero(&ctx->sk->sk_refcnt)) {
				todo[n++] = ctx->sk;
				last = ctx->id;
			}
		}
	}
	spin_unlock_bh(&fastivc_socks_lock);
	if (rotor)
		*rotor = last;
	for (i = 0; i < n; i++) {
		/* a socket its owner holds waits for the next tick: the tick never waits for one */
		if (sem_trylock_sock(todo[i])) {
			ctx = fastivc_ctx(todo[i]);
			if (ctx)
				act(ctx);
			release_sock(todo[i]);
		}
		sock_put(todo[i]);
	}
}

/*
 * Once a second, from the tick: is every tunnel's peer still alive? A destroyed domain's addresses leave the DEM's
 * table when it dies (evtmgr_destroy), so a tunnel whose peer address no longer belongs to the peer domain has
 * nobody at the other end: its connections are aborted (fastivc_peer_gone), within a tick of the DEM's purge. One
 * lookup per distinct peer address with a tunnel, at most SEM_PEERS_MAX per tick; when there are more, the next
 * ticks start further along the list (rotor), so every peer gets its turn.
 */
#define SEM_PEERS_MAX 16

struct sem_peer {
	struct xen_evtmgr_addr addr;
	domid_t domid;
	bool gone;
};

static bool has_tunnel(const struct fastivc_sock *ctx)
{
	return READ_ONCE(ctx->mode) == FIVC_MODE_TUNNEL &&
	       (READ_ONCE(ctx->tx_state) == FIVC_DIR_OPEN || READ_ONCE(ctx->rx_state) == FIVC_DIR_OPEN ||
		READ_ONCE(ctx->tx_state) == FIVC_DIR_CREATING);
}

struct sem_peers {
	const struct sem_peer *p;
	unsigned int n;
};

static bool peer_is_gone(const struct fastivc_sock *ctx, const void *arg)
{
	const struct sem_peers *ps = arg;
	unsigned int i;

	if (!has_tunnel(ctx))
		return false;
	for (i = 0; i < ps->n; i++)
		if (ps->p[i].gone && fastivc_addr_eq(&ps->p[i].addr, &ctx->raddr) && ps->p[i].domid == ctx->peer)
			return true;
	return false;
}

static void sem_check_peers(void)
{
	static unsigned int rotor; /* peers to pass over before collecting (only the tick work touches it) */
	struct sem_peer peers[SEM_PEERS_MAX];
	unsigned int np = 0, skip = rotor, seen = 0, i;
	struct fastivc_sock *ctx;
	bool any_gone = false;
	domid_t d;

	spin_lock_bh(&fastivc_socks_lock);
	list_for_each_entry(ctx, &fastivc_socks, node) {
		if (!has_tunnel(ctx))
			continue;
		for (i = 0; i < np && !(fastivc_addr_eq(&peers[i].addr, &ctx->raddr) && peers[i].domid == ctx->peer); i++)
			;
		if (i < np || np == SEM_PEERS_MAX)
			continue;
		if (seen++ < skip)
			continue;
		peers[np].addr = ctx->raddr;
		peers[np].domid = ctx->peer;
		peers[np].gone = false;
		np++;
	}
	spin_unlock_bh(&fastivc_socks_lock);
	rotor = np == SEM_PEERS_MAX ? rotor + np : 0;
	for (i = 0; i < np; i++) {
		/* a failed lookup says nothing about the peer: only a different answer does */
		if (dem_lookup(&peers[i].addr, &d) == 0 && d != peers[i].domid) {
			peers[i].gone = true;
			any_gone = true;
		}
	}
	if (any_gone)
		sem_each_sock(peer_is_gone, &(struct sem_peers){ peers, np }, fastivc_peer_gone, NULL);
}

/* fastivc_sock_tick's sockets (fastivc_sock_needs_tick: timeouts, detaches, resends). */
static bool needs_tick(const struct fastivc_sock *ctx, const void *arg)
{
	return fastivc_sock_needs_tick(ctx);
}

static bool has_kick_pending(const struct fastivc_sock *ctx, const void *arg)
{
	return READ_ONCE(ctx->kick_pending) != 0;
}

/* Every tunnelled socket's waiters, if it has news for them (lock-free: see fastivc_sock_wake_check). */
static void sem_wake_check(void)
{
	struct fastivc_sock *ctx;

	spin_lock_bh(&fastivc_socks_lock);
	list_for_each_entry(ctx, &fastivc_socks, node)
		fastivc_sock_wake_check(ctx);
	spin_unlock_bh(&fastivc_socks_lock);
}

/*
 * Once a second: the safety-net fetch, tunnel timeouts, data events whose raise failed, waiters with news, peer
 * liveness, the statistics mirror.
 */
static void sem_tick(struct work_struct *w)
{
	static u64 tick_rotor, kick_rotor; /* the last context id each handled; only the tick work touches them */

	tasklet_schedule(&sem_tasklet); /* the safety-net fetch */
	sem_each_sock(needs_tick, NULL, fastivc_sock_tick, &tick_rotor);
	sem_each_sock(has_kick_pending, NULL, fastivc_sock_retry_kicks, &kick_rotor);
	sem_wake_check();
	sem_check_peers();
	fastivc_stats_mirror();
}

static void sem_timer_fn(struct timer_list *t)
{
	queue_work(fastivc_wq, &tick_work);
	if (!READ_ONCE(sem_stopping))
		mod_timer(&sem_timer, jiffies + HZ);
}

int fastivc_sem_init(void)
{
	sem_buf = kzalloc(struct_size(sem_buf, ev, SEM_BATCH), GFP_KERNEL);
	ctl_ring = kvcalloc(SEM_CTL_RING, sizeof(*ctl_ring), GFP_KERNEL);
	if (!sem_buf || !ctl_ring) {
		kfree(sem_buf);
		kvfree(ctl_ring);
		return -ENOMEM;
	}
	tasklet_init(&sem_tasklet, sem_fetch, 0);
	INIT_WORK(&sem_work, sem_control);
	INIT_DELAYED_WORK(&retry_work, sem_retry);
	INIT_WORK(&tick_work, sem_tick);
	sem_irq = bind_virq_to_irqhandler(EVTMGR_VIRQ, 0, sem_virq, 0, "fastivc-dem", NULL);
	if (sem_irq < 0) {
		kfree(sem_buf);
		kvfree(ctl_ring);
		return sem_irq;
	}
	/* bound on vCPU 0; say so in the effective mask too (the bind leaves it empty), which steering compares with */
	irq_set_affinity(sem_irq, cpumask_of(0));
	register_syscore_ops(&sem_syscore_ops);
	/* events raised before we bound the VIRQ signalled nobody: fetch them now */
	tasklet_schedule(&sem_tasklet);
	timer_setup(&sem_timer, sem_timer_fn, 0);
	mod_timer(&sem_timer, jiffies + HZ);
	return 0;
}

void fastivc_sem_exit(void)
{
	WRITE_ONCE(sem_stopping, true);
	del_timer_sync(&sem_timer);
	unregister_syscore_ops(&sem_syscore_ops);
	mutex_lock(&steer_lock);
	if (sem_irq >= 0) {
		/* unbound where it was bound: Linux's per-CPU VIRQ record is the bind's, so a later insmod binds again */
		irq_set_affinity(sem_irq, cpumask_of(0));
		unbind_from_irqhandler(sem_irq, NULL);
	}
	sem_irq = -1;
	mutex_unlock(&steer_lock);
	cancel_work_sync(&tick_work);
	tasklet_kill(&sem_tasklet);
	cancel_work_sync(&sem_work);
	cancel_delayed_work_sync(&retry_work);
	{
		struct sem_retry *r, *tmp;

		list_for_each_entry_safe(r, tmp, &retry_list, node) {
			list_del(&r->node);
			kfree(r);
		}
	}
	if (atomic64_read(&ctl_dropped))
		pr_warn("fastivc: %lld control events were dropped (control queue full)\n",
			(long long)atomic64_read(&ctl_dropped));
	if (atomic64_read(&retry_dropped))
		pr_warn("fastivc: %lld control events were dropped (retry list full)\n",
			(long long)atomic64_read(&retry_dropped));
	kfree(sem_buf);
	kvfree(ctl_ring);
}
