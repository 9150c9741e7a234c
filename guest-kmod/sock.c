// SPDX-License-Identifier: GPL-2.0-only
/*
 * sock.c: the tunnelled socket's operations, kTLS-style copies of tcp_prot and inet_stream_ops with send, receive,
 * poll, ioctl and close replaced. A socket gets them when the Protocol Monitor finds its peer co-resident.
 *
 * Each direction moves to its tunnel independently and without losing or reordering a byte:
 *   sender    creates the tunnel on its first send and keeps sending on TCP until the receiver has mapped it
 *             (ctrl->rx_state == IVC_RX_MAPPED). It then writes switch_seq = the TCP sequence number of its next
 *             byte and sets IVC_TX_SWITCHED; everything after goes into channels. No switch while another thread
 *             of the socket is inside TCP's own send (it would queue bytes behind switch_seq).
 *   mapping   the receiver maps the tunnel as soon as EVENT_CREATE_TUNNEL comes and accepts it (IVC_RX_ACCEPTED: the
 *             sender stops its create timeout), but writes IVC_RX_MAPPED only once a read has gone through this
 *             file's receive path (rx_publish). A reader blocked in TCP's own recvmsg or splice since before the
 *             socket was decided would wait there for TCP bytes that no longer come: until it returns, the sender
 *             stays on TCP.
 *   receiver  reads TCP until its copied_seq reaches switch_seq (rx_data_seq: a FIN read with the last bytes does not
 *             count), then reads channels. So data the sender queued on TCP before the switch (or before the module
 *             was loaded) is read first.
 *   detach    before this domain suspends (lifecycle.c), or when the peer's does, a direction leaves its tunnel
 *             without waiting for the reader (ivc_ring.h "Detach"): the receiver records what its application
 *             consumed and unmaps; the sender sends the rest again on TCP from its own pages (FIVC_DIR_RESEND), at
 *             switch_seq, before any newer byte. Both directions are then plain TCP; the next send creates a new
 *             tunnel, to the peer's domain as the DEM knows it then (tx_moving).
 *   MSG_OOB   the tunnel has no urgent data: before the switch the direction stays on TCP for good (reason `oob`);
 *             after it the sender waits until every channel was read, sets IVC_TX_REVERTED and continues on TCP;
 *             the receiver, finding the tunnel empty and REVERTED, goes back to TCP for good.
 * The TCP connection stays up underneath (thesis 3.3): FIN, RST, keepalive and errors come from it. EOF is TCP's
 * FIN once the tunnel is empty.
 *
 * A value from the peer that breaks the protocol resets this connection (tcp_disconnect: the application gets
 * ECONNRESET, the peer an RST), counts a violation, and releases the tunnels. Nothing else is affected.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/delay.h>
#include <linux/uio.h>
#include <linux/poll.h>
#include <linux/splice.h>
#include <linux/sched/signal.h>
#include <linux/sockios.h>
#include <linux/skbuff.h>
#include <linux/errqueue.h>
#include <asm/ioctls.h>
#include <net/tcp.h>
#include <net/inet_common.h>
#include "fastivc.h"

struct proto fastivc_tunnel_prot, fastivc_tunnel6_prot;
static struct proto_ops fastivc_tunnel_ops, fastivc_tunnel6_ops;
static const struct proto *base_prot;
static const struct proto_ops *base_ops;
static const struct proto_ops *base6_ops; /* inet6_stream_ops (not exported): learnt from the first IPv6 socket */
static DEFINE_MUTEX(ops6_lock);

/*
 * Fault injection, for the lab's hostile-peer test: fault_inject=PORT:KIND makes this module, as a sender, write one
 * bad channel header on the next channel it publishes on a connection with local or remote port PORT, then clears
 * itself. KIND: gen (gen_num from the wrong round), size (larger than the channel), pend_read (more receivers than
 * the tunnel has). The receiving domain must break that connection only. nomem: the next tunnel created on PORT fails
 * one of its allocations half way (the connection must stay on TCP, reason no_memory). A timing fault, switch_in_batch: on the
 * next sendfile()/splice() page sent on TCP before the switch that is not the last of its batch, wait (up to 1 s)
 * until the receiver has mapped the tunnel, so the switch falls inside the batch, with TCP holding that page back
 * (the race of tx_push_tcp). raise_busy: the next EVENT_CREATE_TUNNEL raise fails with -EBUSY, as when the DEM's
 * pending list for the peer is full (the direction must stay on TCP, then try again). The quota's hostile peers:
 * create_twice, as a sender, closes the next tunnel on PORT unused once it is mapped and offers another half a second
 * later (the receiver must refuse a second tunnel for one connection); never_unmap, as a receiver, keeps every tunnel
 * of PORT mapped after its release until fault_inject is set again (the sender must hold no more than its quota).
 * Never set on a production host.
 */
enum { FAULT_NONE, FAULT_GEN, FAULT_SIZE, FAULT_PEND_READ, FAULT_SWITCH_IN_BATCH, FAULT_NOMEM, FAULT_RAISE_BUSY,
       FAULT_CREATE_TWICE, FAULT_NEVER_UNMAP };
static unsigned int fault_port, fault_kind;
static DEFINE_SPINLOCK(fault_lock);

/* never_unmap is still set: a receiving tunnel marked by it, released now, stays mapped (tunnel.c) */
bool fastivc_fault_keeping(void)
{
	return READ_ONCE(fault_kind) == FAULT_NEVER_UNMAP;
}

static int set_fault(const char *val, const struct kernel_param *kp)
{
	static const char *const kinds[] = { "none", "gen", "size", "pend_read", "switch_in_batch", "nomem", "raise_busy",
					     "create_twice", "never_unmap" };
	char kind[16];
	unsigned int port, k;

	if (sscanf(val, "%u:%15s", &port, kind) != 2 || port > 65535)
		return -EINVAL;
	for (k = 0; k < ARRAY_SIZE(kinds) && strcmp(kind, kinds[k]); k++)
		;
	if (k == ARRAY_SIZE(kinds))
		return -EINVAL;
	spin_lock(&fault_lock);
	fault_port = port;
	fault_kind = k;
	spin_unlock(&fault_lock);
	ivc_tunnel_release_kept(); /* never_unmap ends with any new setting */
	return 0;
}

static int get_fault(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%u:%u\n", fault_port, fault_kind);
}

static const struct kernel_param_ops fault_ops = { .set = set_fault, .get = get_fault };
module_param_cb(fault_inject, &fault_ops, NULL, 0600);
MODULE_PARM_DESC(fault_inject, "lab only: PORT:gen|size|pend_read corrupts the next channel header sent on PORT; PORT:nomem fails the next tunnel allocation on PORT half way; PORT:raise_busy answers the next EVENT_CREATE_TUNNEL raise on PORT with -EBUSY; PORT:switch_in_batch delays a sendfile batch until the receiver mapped the tunnel; PORT:create_twice offers a second tunnel for the next connection on PORT; PORT:never_unmap keeps every tunnel received on PORT mapped after release, until fault_inject is set again");

/*
 * The fault to inject now on this connection, if one of kinds (a mask of 1 << FAULT_*) is set. One-shot, except
 * never_unmap, which stays until fault_inject is set again.
 */
static unsigned int take_fault(struct fastivc_sock *ctx, unsigned int kinds)
{
	unsigned int k = FAULT_NONE;

	if (likely(!READ_ONCE(fault_kind)))
		return FAULT_NONE;
	spin_lock(&fault_lock);
	if ((kinds & (1u << fault_kind)) && (fault_port == ctx->lport || fault_port == ctx->rport)) {
		k = fault_kind;
		if (k != FAULT_NEVER_UNMAP)
			fault_kind = FAULT_NONE;
	}
	spin_unlock(&fault_lock);
	return k;
}

/* How long a sender keeps waiting for the receiver to map a tunnel before giving up on it (stays on TCP). */
#define FASTIVC_CREATE_TIMEOUT (5 * HZ)

/*
 * A CREATE raise that failed for a passing reason (-EBUSY: the peer's pending events are full; -ENOMEM: Xen is short
 * of memory; -ENOSPC: the pair's DEM records are all in use, until connections close) is tried again by a later
 * send, after 1 s, then 2, 4... FASTIVC_CREATE_RETRIES bounds the raises one connection can cost (8: about four
 * minutes of back-off); other errors (the address moved, the peer is dying, XSM refuses) keep the direction on TCP.
 */
#define FASTIVC_CREATE_RETRIES 8

static bool create_error_passing(int rc)
{
	return rc == -EBUSY || rc == -ENOMEM || rc == -ENOSPC;
}

static bool tx_may_create(const struct fastivc_sock *ctx)
{
	return !ctx->tx_created || (ctx->tx_retry_at && time_after_eq(jiffies, ctx->tx_retry_at));
}

/*
 * After a detach the peer may be saved, migrating, or back as another domain: a creation that fails then (the
 * address unknown to the DEM, the peer rejecting while it suspends, no answer) is tried again by a later send every
 * FASTIVC_MOVE_INTERVAL, FASTIVC_MOVE_RETRIES times (two minutes at least: a save and restore, or a local migration,
 * of a small domain takes seconds), each time asking the DEM which domain holds the peer's address now.
 */
#define FASTIVC_MOVE_INTERVAL HZ
#define FASTIVC_MOVE_RETRIES 120

/*
 * A direction's tunnels, as a receiver: a sender offers one per connection, and another only after that one ended
 * without carrying the connection (a detach before a save or migration, or a tunnel it closed unused after its
 * create timeout). Such a new offer is taken RX_AGAIN_AFTER later at the earliest (a moving sender retries once a
 * second, FASTIVC_MOVE_INTERVAL), and RX_TUNNELS_MAX in all (a connection that lives through that many saves or
 * migrations stays on TCP afterwards). So a peer that keeps offering, detaching or closing tunnels costs us at most
 * one map and unmap of a tunnel per connection per second, and a bounded number per connection.
 */
#define RX_AGAIN_AFTER HZ
#define RX_TUNNELS_MAX 128

static bool rx_may_map(const struct fastivc_sock *ctx)
{
	if (!ctx->rx_tunnels)
		return true;
	return ctx->rx_again_at && time_after_eq(jiffies, ctx->rx_again_at) && ctx->rx_tunnels < RX_TUNNELS_MAX;
}

/* A creation failed (lock held): try again later if the failure may pass or the peer is moving, else stay on TCP. */
static void tx_create_failed(struct fastivc_sock *ctx, bool passing)
{
	if (ctx->tx_moving && ctx->tx_move_tries < FASTIVC_MOVE_RETRIES) {
		ctx->tx_move_tries++;
		ctx->tx_retry_at = (jiffies + FASTIVC_MOVE_INTERVAL) | 1;
	} else if (passing && ctx->tx_retries < FASTIVC_CREATE_RETRIES) {
		ctx->tx_retry_at = (jiffies + (HZ << ctx->tx_retries)) | 1;
		ctx->tx_retries++;
	} else {
		ctx->tx_retry_at = 0;
		ctx->tx_moving = false;
	}
}

/*
 * The direction left its tunnel by a detach (lock held): a send a second later or more creates another, after a
 * look-up. A detach counts as a try, and the tries are reset only by a tunnel that opens: a peer that detaches every
 * tunnel it is offered gets one a second at most; one that also keeps their pages mapped gets none once they fill
 * its quota (tunnel.c peer_pages_max). After MSG_OOB the direction stays on TCP.
 */
static void tx_start_moving(struct fastivc_sock *ctx)
{
	ctx->tx_accepted = false;
	ctx->tx_peer_closed = false;
	ctx->tx_created = jiffies | 1;
	if (ctx->tx_oob || ++ctx->tx_move_tries >= FASTIVC_MOVE_RETRIES) {
		ctx->tx_moving = false;
		ctx->tx_retry_at = 0;
		return;
	}
	ctx->tx_moving = true;
	ctx->tx_retry_at = (jiffies + FASTIVC_MOVE_INTERVAL) | 1;
}

/*
 * tx_moving, before creating (lock held): which domain holds the peer's address now? true: ctx->peer is it. A peer
 * restored or migrated comes back as another domain; while a tunnel of the old one is still mapped here the move
 * waits.
 */
static bool tx_find_peer(struct fastivc_sock *ctx)
{
	domid_t d;

	if (dem_lookup(&ctx->raddr, &d) || d == EVTMGR_DOMID_NONE || d == READ_ONCE(fastivc_domid))
		return false;
	if (d != ctx->peer) {
		if (ctx->rx)
			return false;
		WRITE_ONCE(ctx->peer, d);
	}
	return true;
}

void fastivc_wake(struct sock *sk, __poll_t mask)
{
	struct socket_wq *wq;

	rcu_read_lock();
	wq = rcu_dereference(sk->sk_wq);
	if (skwq_has_sleeper(wq))
		wake_up_interruptible_poll(&wq->wait, mask);
	rcu_read_unlock();
	if (mask & EPOLLIN)
		sk_wake_async(sk, SOCK_WAKE_WAITD, POLL_IN);
	if (mask & EPOLLOUT)
		sk_wake_async(sk, SOCK_WAKE_SPACE, POLL_OUT);
}

static __poll_t fastivc_poll(struct file *file, struct socket *sock, poll_table *wait);

/*
 * Does anyone wait on the socket: another reader or writer, a poll/epoll/select entry, or an O_ASYNC owner (SIGIO
 * has no wait-queue entry)?
 */
static bool sk_has_waiters(struct sock *sk)
{
	bool has;

	if (sock_flag(sk, SOCK_FASYNC))
		return true;
	rcu_read_lock();
	has = skwq_has_sleeper(rcu_dereference(sk->sk_wq));
	rcu_read_unlock();
	return has;
}

/*
 * splice() from a tunnelled socket into a pipe. TCP's tcp_splice_read() takes skbs straight from TCP's receive
 * queue, so it would never see tunnel data (and would wait for good for TCP bytes after the switch). This reads
 * through the socket's read_iter into the pipe instead, i.e. through fastivc_recvmsg(): the bytes are copied, in
 * order, from TCP up to switch_seq and then from the channels.
 */
static ssize_t fastivc_splice_read(struct socket *sock, loff_t *ppos, struct pipe_inode_info *pipe, size_t len,
				   unsigned int flags)
{
	return generic_file_splice_read(sock->file, ppos, pipe, len, flags);
}

/* A tunnelled socket's proto_ops: the family's own, with our poll and splice_read. */
static void tunnel_ops_init(struct proto_ops *ops, const struct proto_ops *base)
{
	*ops = *base;
	ops->poll = fastivc_poll;
	ops->splice_read = fastivc_splice_read;
}

/*
 * The socket's proto_ops become the tunnel's (process context: on its first send/recv, or when it maps a receiving
 * tunnel; once the socket has a struct socket).
 */
static void swap_ops(struct sock *sk)
{
	struct socket *sock = sk->sk_socket;
	const struct proto_ops *ops;

	if (!sock)
		return;
	ops = READ_ONCE(sock->ops);
	if (ops == base_ops) {
		WRITE_ONCE(sock->ops, &fastivc_tunnel_ops);
		return;
	}
	if (sk->sk_family != AF_INET6 || ops == &fastivc_tunnel6_ops || ops->poll != tcp_poll)
		return;
	mutex_lock(&ops6_lock);
	if (!base6_ops) {
		tunnel_ops_init(&fastivc_tunnel6_ops, ops);
		smp_store_release(&base6_ops, ops);
	}
	mutex_unlock(&ops6_lock);
	if (ops == smp_load_acquire(&base6_ops))
		WRITE_ONCE(sock->ops, &fastivc_tunnel6_ops);
}

static void set_dir(struct fastivc_sock *ctx, bool tx, enum fastivc_dir st)
{
	enum fastivc_dir old = tx ? ctx->tx_state : ctx->rx_state;

	if (old == FIVC_DIR_OPEN && st != FIVC_DIR_OPEN) {
		atomic64_dec(&fastivc_stats.tunnels_open);
		if (tx)
			WRITE_ONCE(ctx->tx_stall_since, 0); /* TCP_USER_TIMEOUT's clock is the open tunnel's */
	}
	if (old != FIVC_DIR_OPEN && st == FIVC_DIR_OPEN)
		atomic64_inc(&fastivc_stats.tunnels_open);
	if (tx)
		WRITE_ONCE(ctx->tx_state, st);
	else
		WRITE_ONCE(ctx->rx_state, st);
}

/*
 * The pointer is cleared before the tunnel goes to ivc_tunnel_release(): a lock-free reader (poll, the tick's wake
 * check, the statistics) that starts after the release was queued must not find it, as RCU waits only for readers
 * that started before.
 */
static void rx_release_as(struct fastivc_sock *ctx, enum fastivc_dir st, u32 rx_word, bool tell_peer)
{
	struct ivc_tunnel *t = ctx->rx;

	bool park;

	WRITE_ONCE(ctx->kick_pending, ctx->kick_pending & ~EVTMGR_EVENT_RECV_GET_DATA);
	WRITE_ONCE(ctx->rx_unpublished, false);
	if (!t)
		return;
	if (st == FIVC_DIR_BROKEN)
		t->no_reuse = true;
	/*
	 * A connection done with its tunnel leaves it mapped for the pair's next one: IVC_RX_PARKING now (the sender
	 * sees the connection over), parked by the release work once this socket's lock-free readers are done (link.c).
	 */
	park = rx_word == IVC_RX_CLOSED && st == FIVC_DIR_CLOSED && ivc_link_may_park(t);
	t->park = park;
	WRITE_ONCE(t->ctrl->rx_state, park ? IVC_RX_PARKING : rx_word);
	/* a sender that closed its end already has nobody left to tell (its socket is gone or going) */
	if (tell_peer && !(rx_word == IVC_RX_CLOSED && (READ_ONCE(t->ctrl->tx_flags) & IVC_TX_CLOSED)))
		dem_raise(ctx, EVTMGR_EVENT_RECV_CLOSE_TUNNEL, NULL);
	WRITE_ONCE(ctx->rx, NULL);
	ivc_tunnel_release(t);
	set_dir(ctx, false, st);
}

static void rx_release(struct fastivc_sock *ctx, enum fastivc_dir st, bool tell_peer)
{
	rx_release_as(ctx, st, IVC_RX_CLOSED, tell_peer);
}

/*
 * The receiver leaves its tunnel without waiting for the reader (this domain or the sender's is about to suspend):
 * it records what the application consumed, says IVC_RX_DETACHED, tells the sender and unmaps. The sender sends the
 * rest again on TCP at switch_seq (ivc_ring.h "Detach"), where this socket's reads go on; a later tunnel has a
 * switch of its own. Lock held (the reader's position is the owner's).
 */
static void abort_conn(struct fastivc_sock *ctx, enum fastivc_reason why, int err, bool tell_peer);

static void rx_detach(struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t = ctx->rx;
	enum fastivc_dir st = ctx->rx_state;
	u32 gen, off;

	/* reverted (MSG_OOB): read to its end and back on TCP for good, but still mapped until now */
	if (!t || (st != FIVC_DIR_OPEN && st != FIVC_DIR_REVERTED))
		return;
	if (st == FIVC_DIR_OPEN)
		ivc_rx_ready(&t->rx, t->ctrl); /* the owner's look: a channel read to its end is released first */
	ivc_rx_position(&t->rx, &gen, &off);
	WRITE_ONCE(t->ctrl->rx_gen, gen);
	WRITE_ONCE(t->ctrl->rx_off, off);
	virt_wmb(); /* the position before the state that publishes it */
	WRITE_ONCE(t->ctrl->rx_state, IVC_RX_DETACHED);
	/*
	 * The sender's FIN may be on TCP already: bytes we have not read cannot be sent again before it. Each side
	 * writes its word (our DETACHED, its IVC_TX_FIN) before it reads the other's, so at least one of us sees the
	 * other: if we see the FIN with bytes unread, a reset, rather than an end of stream that would pass for the
	 * whole of it (if the sender saw DETACHED too, it resent them first: the reset was not needed, but loses nothing).
	 */
	virt_mb();
	if (st == FIVC_DIR_OPEN && (READ_ONCE(t->ctrl->tx_flags) & (IVC_TX_FIN | IVC_TX_CLOSED))) {
		/* unread now: bytes the sender committed up to its FIN count too (they come before the flag) */
		virt_rmb();
		if (ivc_rx_ready_peek(&t->rx, t->ctrl) != 0) {
			abort_conn(ctx, FIVC_R_SUSPEND, ECONNRESET, true);
			return;
		}
	}
	rx_release_as(ctx, st == FIVC_DIR_OPEN ? FIVC_DIR_TCP : st, IVC_RX_DETACHED, true);
	WRITE_ONCE(ctx->rx_switched, false);
	ctx->rx_again_at = (jiffies + RX_AGAIN_AFTER) | 1; /* after the resume the sender offers a new tunnel */
	atomic64_inc(&fastivc_stats.detaches);
}

static void tx_release(struct fastivc_sock *ctx, enum fastivc_dir st, bool tell_peer)
{
	struct ivc_tunnel *t = ctx->tx;

	WRITE_ONCE(ctx->kick_pending, ctx->kick_pending & ~EVTMGR_EVENT_SEND_DATA);
	/* a resend raised the send buffer: back to what it was, unless the application set one since */
	if (ctx->rs_sndbuf) {
		int now = READ_ONCE(ctx->sk->sk_sndbuf);

		/* TCP may have moderated it meanwhile (memory pressure); an SO_SNDBUF the application set stays */
		if (now == ctx->rs_sndbuf_raised || !(ctx->sk->sk_userlocks & SOCK_SNDBUF_LOCK))
			WRITE_ONCE(ctx->sk->sk_sndbuf, min(now, ctx->rs_sndbuf));
		ctx->rs_sndbuf = 0;
	}
	if (!t)
		return;
	if (st == FIVC_DIR_BROKEN)
		t->no_reuse = true;
	WRITE_ONCE(ctx->tx_early, false); /* nothing left to settle */
	WRITE_ONCE(t->ctrl->tx_flags, READ_ONCE(t->ctrl->tx_flags) | IVC_TX_CLOSED);
	if (tell_peer)
		dem_raise(ctx, EVTMGR_EVENT_SEND_CLOSE_TUNNEL, NULL);
	WRITE_ONCE(ctx->tx, NULL);
	ivc_tunnel_release(t);
	set_dir(ctx, true, st);
}

/* The receiver is done with the connection's tunnel: unmapped (closed) or kept for the next connection (parked). */
static bool rx_done(u32 rx_state)
{
	return rx_state == IVC_RX_CLOSED || rx_state == IVC_RX_PARKED || rx_state == IVC_RX_PARKING;
}

/* The receiver detached (it writes its position before the state). Read by the socket's owner. */
static bool tx_receiver_detached(const struct ivc_tunnel *t)
{
	return t && READ_ONCE(t->ctrl->rx_state) == IVC_RX_DETACHED;
}

static void tx_detached(struct sock *sk, struct fastivc_sock *ctx);

/* The sender's direction stays on TCP for good. */
static void tx_fallback(struct fastivc_sock *ctx, enum fastivc_reason why)
{
	tx_release(ctx, FIVC_DIR_TCP, true);
	set_dir(ctx, true, FIVC_DIR_TCP);
	WRITE_ONCE(ctx->reason, why);
	fastivc_count_fallback(why);
}

static void report_nothing(struct sock *sk)
{
}

/* Ends this connection only: both tunnels released, TCP reset (RST to the peer), err for the application. Lock held. */
static void abort_conn(struct fastivc_sock *ctx, enum fastivc_reason why, int err, bool tell_peer)
{
	struct sock *sk = ctx->sk;

	WRITE_ONCE(ctx->mode, FIVC_MODE_BROKEN);
	WRITE_ONCE(ctx->reason, why);
	fastivc_count_fallback(why);
	tx_release(ctx, FIVC_DIR_BROKEN, tell_peer);
	rx_release(ctx, FIVC_DIR_BROKEN, tell_peer);
	if ((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT | TCPF_FIN_WAIT1 | TCPF_FIN_WAIT2)) {
		/*
		 * tcp_disconnect() sends the reset, posts ECONNRESET and reports it: the application, woken, could read
		 * that (SO_ERROR takes no lock) before ours. Its report is held back, and ours is the one reported. We own
		 * the socket, so softirq TCP does not report meanwhile (tcp_v4_err() defers to sk_err_soft).
		 */
		void (*report)(struct sock *sk) = sk->sk_error_report;

		WRITE_ONCE(sk->sk_error_report, report_nothing);
		tcp_disconnect(sk, 0);
		WRITE_ONCE(sk->sk_error_report, report);
		/* done, as tcp_done() leaves a reset or timed-out socket: poll says POLLIN|POLLHUP, reads end at EOF */
		WRITE_ONCE(sk->sk_shutdown, SHUTDOWN_MASK);
		WRITE_ONCE(sk->sk_err, err);
		sk_error_report(sk);
	} else if ((1 << sk->sk_state) & (TCPF_LAST_ACK | TCPF_CLOSING)) {
		/* our FIN is out and unanswered: as tcp_write_err(), the error, then the socket is done */
		WRITE_ONCE(sk->sk_err, err);
		sk_error_report(sk);
		tcp_done(sk);
	}
}

/* The peer broke the protocol (code: an IVC_E_* or a local reason): reset this connection only. Lock held. */
void fastivc_break(struct fastivc_sock *ctx, int code)
{
	char conn[FIVC_CONN_STR];

	if (ctx->mode == FIVC_MODE_BROKEN)
		return;
	pr_warn_ratelimited("fastivc: %s (domain %u) broke the tunnel protocol (code %d): connection reset\n",
			    fastivc_conn_str(conn, ctx), ctx->peer, code);
	WRITE_ONCE(ctx->violations, ctx->violations + 1);
	atomic64_inc(&fastivc_stats.violations);
	abort_conn(ctx, FIVC_R_VIOLATION, ECONNRESET, true); /* the application gets ECONNRESET, the peer an RST */
}

/*
 * The peer domain is gone: the DEM no longer gives its address to it (it was destroyed, or the toolstack moved the
 * address). Nobody will read or free our channels again, so this connection ends at once, as SMC's
 * smc_conn_kill() does: ECONNABORTED, where TCP to a vanished host would leave a reader blocked for good and a writer
 * waiting for its retransmission timeout. A direction still waiting for its receiver only goes back to TCP. Lock held.
 */
void fastivc_peer_gone(struct fastivc_sock *ctx)
{
	char conn[FIVC_CONN_STR];

	if (ctx->mode != FIVC_MODE_TUNNEL)
		return;
	/* a peer that detached before it moved is not gone: its bytes go to TCP (a tick may not have got to it yet) */
	if ((ctx->tx_state == FIVC_DIR_OPEN || ctx->tx_state == FIVC_DIR_CREATING) && !ctx->tx_detach_asked &&
	    tx_receiver_detached(ctx->tx))
		tx_detached(ctx->sk, ctx);
	if (ctx->tx_state != FIVC_DIR_OPEN && ctx->rx_state != FIVC_DIR_OPEN) {
		if (ctx->tx_state == FIVC_DIR_CREATING)
			tx_fallback(ctx, FIVC_R_PEER_GONE);
		return;
	}
	pr_info_ratelimited("fastivc: %s: domain %u is gone, connection aborted\n",
			    fastivc_conn_str(conn, ctx), ctx->peer);
	abort_conn(ctx, FIVC_R_PEER_GONE, ECONNABORTED, false);
	ivc_link_peer_gone(ctx->peer); /* and what the pair's link keeps (a dead domain's pages, our grants) */
}

/* ---- sender ---- */

/*
 * May the send direction be created or switched? Not once it is ending: a switch_seq after the FIN would never be
 * reached by the receiver. Lock held.
 */
static bool tx_may_move(const struct sock *sk)
{
	return !sk->sk_err && !(sk->sk_shutdown & SEND_SHUTDOWN) &&
	       ((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT));
}

/*
 * Before the switch, every byte TCP holds must be on its way: the receiver reads TCP up to switch_seq before it reads
 * a channel, and nothing else will ever push a segment TCP holds back. sendfile() passes MSG_SENDPAGE_NOTLAST on all
 * but the last page of a batch, and TCP does not push after such pages (nor after MSG_MORE, as if corked); if the
 * switch falls inside a batch and the peer already ACKed everything, no send and no ACK would push that tail again
 * (vsftpd's downloads then hung with 0 bytes). tcp_sock_set_cork(sk, false) pushes the pending frames under TCP's
 * usual rules (Nagle, window: ACKs or the probe timer carry on from there); it takes the socket lock itself. A cork
 * the application set is its own: its uncork will push. Returns false if the direction changed meanwhile.
 */
static bool tx_push_tcp(struct sock *sk, struct fastivc_sock *ctx)
{
	const struct tcp_sock *tp = tcp_sk(sk);

	if (tp->write_seq == tp->snd_nxt || (tp->nonagle & TCP_NAGLE_CORK))
		return true;
	release_sock(sk);
	tcp_sock_set_cork(sk, false);
	lock_sock(sk);
	atomic64_inc(&fastivc_stats.switch_pushes);
	return ctx->mode == FIVC_MODE_TUNNEL && ctx->tx_state == FIVC_DIR_CREATING && ctx->tx &&
	       READ_ONCE(ctx->tx->ctrl->rx_state) == IVC_RX_MAPPED && !atomic_read(&ctx->tx_tcp_senders) &&
	       tx_may_move(sk); /* the lock was dropped: a shutdown or a reset may have come meanwhile */
}

/*
 * A sender still waiting for its receiver gives up after FASTIVC_CREATE_TIMEOUT, unless the receiver accepted the
 * tunnel (IVC_RX_ACCEPTED: it maps it and makes it readable with its next read through the module, which may come
 * much later) or mapped it. The control page is the peer's to write: a peer that accepts and never publishes keeps
 * our tunnel allocated until the connection closes, within tx_pages_max. Lock held.
 */
static bool tx_create_timed_out(struct fastivc_sock *ctx, u32 rx_state)
{
	if (rx_state == IVC_RX_ACCEPTED || rx_state == IVC_RX_MAPPED) {
		WRITE_ONCE(ctx->tx_accepted, true); /* the tick looks no more (sem.c is_creating) */
		return false;
	}
	return time_after(jiffies, ctx->tx_created + FASTIVC_CREATE_TIMEOUT);
}

/* No answer from the receiver in time (lock held): on TCP, for good unless the peer is moving. */
static void tx_timed_out(struct fastivc_sock *ctx)
{
	tx_fallback(ctx, FIVC_R_PEER_TIMEOUT);
	tx_create_failed(ctx, false);
}

/* FIVC_DIR_RESEND: bytes still to send again (lock held). */
static u64 tx_resend_left(const struct fastivc_sock *ctx)
{
	u32 gen = ctx->rs_gen, off = ctx->rs_off, chan, len;
	u64 left = 0;

	if (ctx->tx_state != FIVC_DIR_RESEND || !ctx->tx)
		return 0;
	while (ivc_tx_resend_next(&ctx->tx->tx, &gen, &off, &chan, &len)) {
		left += len;
		off += len;
	}
	return left;
}

/*
 * FIVC_DIR_RESEND (lock held): queues on TCP what the detached receiver did not consume, from our own pages, without
 * waiting (MSG_DONTWAIT). The send buffer is raised so that it takes them all at once (at most one tunnel, already
 * counted in the page budget): a sender that never sends again still gets them out; the old size comes back once
 * they are queued. Returns 0 once all are queued (the direction is plain TCP again, the tunnel released), -EAGAIN
 * if TCP could not take them all now (memory pressure: the next send, the tick, or close try again), or TCP's error.
 */
static int tx_resend_push(struct sock *sk, struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t = ctx->tx;
	u32 chan, len, pg, pgoff, n;
	u64 left;
	int rc;

	if (ctx->tx_state != FIVC_DIR_RESEND)
		return 0;
	left = tx_resend_left(ctx);
	if (!left)
		goto done;
	/*
	 * TCP can no longer take bytes. Closed (reset, timed out): nothing to deliver to. Our FIN is out (shut down,
	 * closing): what is left cannot follow it, and the connection ends with a reset rather than let the reader take
	 * the FIN for the end of the stream. A soft error (ICMP with IP_RECVERR) on a live connection is the
	 * application's to read: the resend waits, without calling TCP (which would take the error).
	 */
	if (sk->sk_state == TCP_CLOSE) {
		tx_release(ctx, FIVC_DIR_TCP, false);
		return -EPIPE;
	}
	if ((sk->sk_shutdown & SEND_SHUTDOWN) || !((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT))) {
		abort_conn(ctx, FIVC_R_SUSPEND, ECONNRESET, false);
		return -EPIPE;
	}
	if (sk->sk_err)
		return -EPIPE;
	if (!sk->sk_socket) /* not accepted yet, or orphaned: TCP's send needs the socket (its wait flags) */
		return -EAGAIN;
	if (!ctx->rs_sndbuf) {
		/* room for all of it at once, with the skbs' overhead (twice the bytes covers it) */
		ctx->rs_sndbuf = sk->sk_sndbuf;
		ctx->rs_sndbuf_raised = max_t(int, sk->sk_sndbuf, sk->sk_wmem_queued + 2 * left + SOCK_MIN_SNDBUF);
		WRITE_ONCE(sk->sk_sndbuf, ctx->rs_sndbuf_raised);
	}
	while (ivc_tx_resend_next(&t->tx, &ctx->rs_gen, &ctx->rs_off, &chan, &len)) {
		struct bio_vec bv;
		struct msghdr msg = { .msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL };

		n = ivc_chan_chunk(t->channel_size, chan, ctx->rs_off, len, &pg, &pgoff);
		bv.bv_page = t->data[pg];
		bv.bv_offset = pgoff;
		bv.bv_len = n;
		iov_iter_bvec(&msg.msg_iter, WRITE, &bv, 1, n);
		rc = tcp_sendmsg_locked(sk, &msg, n);
		if (rc <= 0)
			return rc ? rc : -EAGAIN;
		ctx->rs_off += rc;
		WRITE_ONCE(ctx->bytes_resent, ctx->bytes_resent + rc);
		atomic64_add(rc, &fastivc_stats.bytes_resent);
	}
done:
	tx_release(ctx, FIVC_DIR_TCP, false);
	if (ctx->tx_early_refused) { /* an early tunnel refused: as a refused CREATE, TCP unless the peer moves */
		ctx->tx_early_refused = false;
		ctx->tx_created = jiffies | 1;
		tx_create_failed(ctx, false);
	} else {
		tx_start_moving(ctx);
	}
	return 0;
}

/* A send on FIVC_DIR_RESEND (lock held): the resent bytes go first, waiting for room as TCP's own send would. */
static int tx_resend_flush(struct sock *sk, struct fastivc_sock *ctx, int flags)
{
	long timeo = sock_sndtimeo(sk, flags & MSG_DONTWAIT);
	int rc;

	while ((rc = tx_resend_push(sk, ctx)) == -EAGAIN && sk->sk_socket) {
		if (!timeo)
			return -EAGAIN;
		rc = sk_stream_wait_memory(sk, &timeo);
		if (rc)
			return rc;
	}
	return rc;
}

/*
 * shutdown() and close() (lock held): the resent bytes go before the FIN. They normally fit at once (the send buffer
 * was raised for them); under memory pressure this waits up to FASTIVC_RESEND_WAIT for room. Non-zero: they could
 * not be queued (the caller resets the connection: a FIN after a hole would pass for the end of the stream).
 */
#define FASTIVC_RESEND_WAIT HZ
static int tx_resend_flush_bounded(struct sock *sk, struct fastivc_sock *ctx)
{
	unsigned long until = jiffies + FASTIVC_RESEND_WAIT;
	int rc;

	/* TCP's shutdown and close never fail for a signal: this wait ignores them (short uninterruptible steps) */
	while ((rc = tx_resend_push(sk, ctx)) == -EAGAIN && time_before(jiffies, until)) {
		release_sock(sk); /* ACKs free room, from the backlog too */
		schedule_timeout_uninterruptible(HZ / 50);
		lock_sock(sk);
	}
	return rc;
}

/*
 * The receiver detached (IVC_RX_DETACHED): it left the tunnel having consumed exactly up to (rx_gen, rx_off), and
 * no longer reads it. What it did not consume goes out again on TCP first (FIVC_DIR_RESEND), then the direction is
 * plain TCP until a later send creates a new tunnel (tx_moving). A position we did not send is a violation. Lock
 * held.
 */
static int tx_resend_push(struct sock *sk, struct fastivc_sock *ctx);

/* The receiver refused our early tunnel (or we took it back): the switch is an ordinary one now, and no more early. */
static void tx_early_end(struct fastivc_sock *ctx)
{
	WRITE_ONCE(ctx->tx_early, false);
	ctx->tx_no_early = true;
}

/* The send direction resends on TCP what the receiver had not read of the tunnel, from (gen, off) (lock held). */
static void tx_resend_from(struct sock *sk, struct fastivc_sock *ctx, u32 gen, u32 off)
{
	ctx->rs_gen = gen;
	ctx->rs_off = off;
	ctx->rs_sndbuf = 0;
	set_dir(ctx, true, FIVC_DIR_RESEND);
	tx_resend_push(sk, ctx);
}

static void tx_detached(struct sock *sk, struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t = ctx->tx;
	u32 gen, off;

	if (!tx_receiver_detached(t) || ctx->tx_state == FIVC_DIR_RESEND)
		return; /* a repeated RECV_CLOSE (a retried or forged event) must not end a resend under way */
	atomic64_inc(&fastivc_stats.detaches);
	if (ctx->tx_early) /* the receiver refused our early tunnel: later ones wait for it as usual */
		tx_early_end(ctx);
	if (ctx->tx_state != FIVC_DIR_OPEN) {
		/* creating: it never read a byte of it; reverted (MSG_OOB): it had read them all */
		bool reverted = ctx->tx_state == FIVC_DIR_REVERTED;

		tx_release(ctx, reverted ? FIVC_DIR_REVERTED : FIVC_DIR_TCP, false);
		if (!reverted)
			tx_start_moving(ctx);
		return;
	}
	virt_rmb(); /* the state before the position it covers */
	gen = READ_ONCE(t->ctrl->rx_gen);
	off = READ_ONCE(t->ctrl->rx_off);
	if (ivc_tx_position_ok(&t->tx, gen, off)) {
		fastivc_break(ctx, -IVC_E_POSITION);
		return;
	}
	tx_resend_from(sk, ctx, gen, off);
}

/*
 * The SEM found this socket locked by us and left its events to us (sem.c sem_tell_owner): run them now, at a point
 * where we have just taken the lock and hold no tunnel state from before. Never from inside an event's handling.
 */
static inline void owner_events(struct sock *sk, struct fastivc_sock *ctx)
{
	if (unlikely(test_bit(0, &ctx->owner_events)))
		fastivc_sem_owner_events(sk, ctx);
}

/*
 * Switch at connection time (links): a tunnel taken from the pair's link is already mapped by its receiver, so the
 * connection's first byte can go into it before the receiver has even seen the EVENT_CREATE_TUNNEL: no TCP byte, no
 * wait. Only for a connection that has sent nothing yet (nothing sits on TCP before switch_seq) and whose earlier
 * early tunnel was not refused.
 *
 * The receiver decides whether it can take such a tunnel (fastivc_rx_create): not if a task waits on its socket
 * inside TCP's own code (a reader blocked in TCP's recvmsg since before its module decided the socket would never
 * see the tunnel; the usual switch waits for a read through the module, IVC_RX_MAPPED, for that reason). It then
 * detaches at the tunnel's first position and we send everything again on TCP. Until the receiver takes the tunnel
 * (IVC_RX_ACCEPTED or IVC_RX_MAPPED in rx_state) the switch is unconfirmed (tx_early): if it refuses it
 * (EVENT_REJECT_TUNNEL), does not answer in FASTIVC_CREATE_TIMEOUT, MSG_OOB is sent, or our domain suspends, we take
 * the tunnel back with an atomic exchange of rx_state from IVC_RX_NONE to IVC_RX_CLOSED (the receiver takes it with
 * the same exchange to IVC_RX_ACCEPTED: only one of the two wins) and send every byte again on TCP from our pages,
 * as after a detach at the first position (FIVC_DIR_RESEND). Our FIN waits for that to be settled
 * (tx_early_settle): bytes the receiver may never read cannot be followed by a FIN.
 */
static bool tx_early_ok(struct sock *sk, struct fastivc_sock *ctx, struct ivc_tunnel *t)
{
	const struct tcp_sock *tp = tcp_sk(sk);

	return t->claimed && !ctx->tx_no_early && tp->bytes_sent == 0 && tp->write_seq == tp->snd_nxt &&
	       !atomic_read(&ctx->tx_tcp_senders);
}

/*
 * Has the receiver answered the early tunnel? It took it (IVC_RX_ACCEPTED, IVC_RX_MAPPED, or done with it since:
 * closed, parking, parked) or refused it (IVC_RX_DETACHED at the first position: tx_detached resends). Either way the
 * switch is an ordinary one from now on. Only IVC_RX_NONE is no answer.
 */
static bool tx_early_settled(struct fastivc_sock *ctx)
{
	u32 st;

	if (!ctx->tx_early)
		return true;
	if (!ctx->tx) {
		WRITE_ONCE(ctx->tx_early, false);
		return true;
	}
	st = READ_ONCE(ctx->tx->ctrl->rx_state);
	if (st == IVC_RX_DETACHED) {
		tx_early_end(ctx);
		return true;
	}
	if (st != IVC_RX_NONE) {
		WRITE_ONCE(ctx->tx_early, false);
		WRITE_ONCE(ctx->tx_accepted, true);
		return true;
	}
	return false;
}

/*
 * The receiver refused the early tunnel, or never answered (lock held): take it back, unless it answered meanwhile,
 * and send its bytes again on TCP, from the first. true if taken back (the direction is resending, then TCP).
 */
static bool tx_early_take_back(struct sock *sk, struct fastivc_sock *ctx, enum fastivc_reason why)
{
	struct ivc_tunnel *t = ctx->tx;

	if (tx_early_settled(ctx) || !t || ctx->tx_state != FIVC_DIR_OPEN)
		return false;
	if (cmpxchg(&t->ctrl->rx_state, IVC_RX_NONE, IVC_RX_CLOSED) != IVC_RX_NONE)
		return false; /* it took it (or detached): it reads or gives back what it holds */
	WRITE_ONCE(ctx->tx_early, false);
	if (ivc_tx_position_ok(&t->tx, 1, 0)) { /* channels freed by a receiver that never took the tunnel */
		fastivc_break(ctx, -IVC_E_POSITION);
		return true;
	}
	ctx->tx_no_early = true;
	ctx->tx_early_refused = true;
	t->no_reuse = true;
	WRITE_ONCE(ctx->reason, why);
	fastivc_count_fallback(why);
	tx_resend_from(sk, ctx, 1, 0); /* the tunnel's first position: nothing was read */
	return true;
}

/* Moves the send direction along: create the tunnel, then switch once the receiver mapped it. Lock held. */
static void tx_prepare(struct sock *sk, struct fastivc_sock *ctx)
{
	struct xen_evtmgr_tunnel info;
	enum fastivc_reason why;
	struct ivc_tunnel *t;
	int rc;

	if (ctx->mode != FIVC_MODE_TUNNEL)
		return;
	if (!tx_may_move(sk))
		return;
	if (ctx->tx_state == FIVC_DIR_TCP && !ctx->tx && tx_may_create(ctx)) {
		bool evicted = false;
		u32 nch, csize;

		if (ctx->tx_moving && !tx_find_peer(ctx)) {
			ctx->tx_created = jiffies | 1;
			tx_create_failed(ctx, false);
			return;
		}
		ctx->tx_created = jiffies | 1;
		fastivc_geometry(sk, &nch, &csize);
		/* over the page budget or the peer's quota: a smaller tunnel, down to the smallest; then TCP (its reason) */
		while (!(t = ivc_tunnel_create_tx(ctx->peer, &ctx->raddr, nch, csize, &info, &why, &evicted,
						  take_fault(ctx, 1u << FAULT_NOMEM))) &&
		       (why == FIVC_R_BUDGET || why == FIVC_R_PEER_QUOTA) &&
		       fastivc_geometry_smaller(&nch, &csize))
			;
		if (!t) {
			tx_fallback(ctx, why);
			/* tunnels kept in links are on their way back (their receivers unmap them): a later send tries again */
			if (evicted)
				tx_create_failed(ctx, true);
			return;
		}
		/* creating before the raise: the receiver's answer may come at once */
		ctx->tx = t;
		ctx->tx_channels = t->nr_channels;
		ctx->tx_channel_size = t->channel_size;
		if (tx_early_ok(sk, ctx, t)) {
			/* switched from the first byte: nothing was sent yet, and the receiver maps nothing new */
			struct ivc_ctrl *c = t->ctrl;

			WRITE_ONCE(c->switch_seq, tcp_sk(sk)->write_seq);
			virt_wmb(); /* switch_seq before the flag */
			WRITE_ONCE(c->tx_flags, READ_ONCE(c->tx_flags) | IVC_TX_SWITCHED);
			WRITE_ONCE(ctx->tx_early, true);
			set_dir(ctx, true, FIVC_DIR_OPEN);
		} else {
			set_dir(ctx, true, FIVC_DIR_CREATING);
		}
		rc = take_fault(ctx, 1u << FAULT_RAISE_BUSY) ? -EBUSY : dem_raise(ctx, EVTMGR_EVENT_CREATE_TUNNEL, &info);
		if (rc) {
			WRITE_ONCE(ctx->tx_early, false); /* nothing was written into it: it goes back to its link */
			tx_release(ctx, FIVC_DIR_TCP, false); /* never announced: nobody to tell */
			WRITE_ONCE(ctx->reason, FIVC_R_RAISE_FAILED);
			fastivc_count_fallback(FIVC_R_RAISE_FAILED);
			tx_create_failed(ctx, create_error_passing(rc));
			if (!ctx->tx_moving) /* a moving peer's address is expected to be refused for a while */
				pr_info_ratelimited("fastivc: EVENT_CREATE_TUNNEL to domain %u failed (%d), staying on TCP%s\n",
						    ctx->peer, rc, ctx->tx_retry_at ? " for now" : "");
			return;
		}
		t->offered = true;
		ctx->tx_retry_at = 0;
		atomic64_inc(&fastivc_stats.tunnels_created);
		if (ctx->tx_early) {
			atomic64_inc(&fastivc_stats.early_switches);
			ctx->tx_moving = false;
			ctx->tx_move_tries = 0;
		}
	}
	if (ctx->tx_early)
		tx_early_settled(ctx);
	if (ctx->tx_state == FIVC_DIR_CREATING) {
		struct ivc_ctrl *c = ctx->tx->ctrl;

		/*
		 * Not while another thread is inside TCP's sendmsg/sendpage: it released the socket lock to wait for
		 * memory, and the bytes it has still to queue would land after switch_seq, where the receiver no longer
		 * reads TCP. This call goes to TCP too; the switch comes with a send that finds TCP free.
		 */
		u32 rxs = READ_ONCE(c->rx_state);

		if (rxs == IVC_RX_MAPPED && !atomic_read(&ctx->tx_tcp_senders)) {
			if (unlikely(take_fault(ctx, 1u << FAULT_CREATE_TWICE))) {
				/*
				 * fault_inject create_twice: a peer that offers a second tunnel for one connection. This
				 * one is closed unused, and a send half a second later offers another, which the receiver
				 * must refuse.
				 */
				tx_release(ctx, FIVC_DIR_TCP, true);
				ctx->tx_created = jiffies | 1;
				ctx->tx_retry_at = (jiffies + HZ / 2) | 1;
				return;
			}
			if (!tx_push_tcp(sk, ctx))
				return;
			c = ctx->tx->ctrl;
			WRITE_ONCE(c->switch_seq, tcp_sk(sk)->write_seq);
			virt_wmb(); /* switch_seq before the flag */
			WRITE_ONCE(c->tx_flags, READ_ONCE(c->tx_flags) | IVC_TX_SWITCHED);
			set_dir(ctx, true, FIVC_DIR_OPEN);
			ctx->tx_moving = false;
			ctx->tx_move_tries = 0;
		} else if (rxs == IVC_RX_DETACHED) {
			tx_detached(sk, ctx); /* the receiver is suspending */
		} else if (tx_create_timed_out(ctx, rxs)) {
			tx_timed_out(ctx);
		}
	}
}

/*
 * As tcp_sendmsg_locked(): a socket error is reported as -EPIPE here and left in sk_err, so that a call which already
 * sent bytes returns their count and the next call gets the error itself (sk_stream_error() turns -EPIPE into it).
 */
/*
 * The receiver closed its end of the tunnel: EVENT_RECV_CLOSE_TUNNEL said so, or (should that event be lost: a full
 * control queue) its state in the control page, which is what validates the event anyway.
 */
static bool tx_receiver_closed(const struct fastivc_sock *ctx, const struct ivc_tunnel *t)
{
	return READ_ONCE(ctx->tx_peer_closed) || (t && rx_done(READ_ONCE(t->ctrl->rx_state)));
}

/*
 * Lock held. -EXDEV: the direction is on TCP again (a detach, or another thread's MSG_OOB while this one waited):
 * the caller sends the rest there.
 */
static int tx_error(struct sock *sk, struct fastivc_sock *ctx)
{
	if (sk->sk_err || (sk->sk_shutdown & SEND_SHUTDOWN))
		return -EPIPE;
	if (ctx->tx_state == FIVC_DIR_OPEN && tx_receiver_detached(ctx->tx))
		tx_detached(sk, ctx);
	if (ctx->mode == FIVC_MODE_TUNNEL && (ctx->tx_state == FIVC_DIR_RESEND || ctx->tx_state == FIVC_DIR_TCP ||
					      ctx->tx_state == FIVC_DIR_REVERTED))
		return -EXDEV;
	if (tx_receiver_closed(ctx, ctx->tx))
		return -EPIPE;
	if (ctx->tx_state != FIVC_DIR_OPEN)
		return -ECONNRESET;
	return 0;
}

/* drain: wait until every channel was read (MSG_OOB), not just one */
static bool tx_wake_cond(struct sock *sk, struct fastivc_sock *ctx, bool drain)
{
	struct ivc_tunnel *t;
	bool ready;

	if (READ_ONCE(sk->sk_err) || (READ_ONCE(sk->sk_shutdown) & SEND_SHUTDOWN) || READ_ONCE(ctx->tx_peer_closed) ||
	    READ_ONCE(ctx->tx_state) != FIVC_DIR_OPEN)
		return true;
	rcu_read_lock();
	t = READ_ONCE(ctx->tx);
	ready = !t || tx_receiver_closed(ctx, t) || tx_receiver_detached(t) ||
		(drain ? ivc_tx_in_flight(&t->tx, t->ctrl) == 0 : ivc_tx_writable(&t->tx, t->ctrl));
	rcu_read_unlock();
	return ready;
}

/*
 * Our waits on a socket's wait queue use this wake function, TCP's its own (woken_wake_function): so a receiver can
 * tell whether a task waits inside TCP's code (rx_tcp_waiter).
 */
static int fastivc_woken_wake(struct wait_queue_entry *wq_entry, unsigned int mode, int sync, void *key)
{
	return woken_wake_function(wq_entry, mode, sync, key);
}

/*
 * Sleeps are cut into slices of FASTIVC_WAIT_SLICE: a waiter that was not woken looks at the channel headers again by
 * itself, so an event lost anywhere between the peer's raise and our wake-up (Xen may skip a VIRQ, a peer may not
 * raise) costs at most one slice, never a hang. Such rescues are counted (`lost_wakeups`).
 */
#define FASTIVC_WAIT_SLICE (HZ / 10)

/*
 * Sleeps on the socket's wait queue (lock held; sk_wait_event() releases and retakes it) for one slice of *timeo,
 * or until cond (evaluated lock-free) holds, and charges the time used to *timeo. Evaluates to sk_wait_event()'s
 * result: cond's value, or < 0 on a signal.
 */
#define SLICED_WAIT(sk, timeo, cond)                                                                         \
	({                                                                                                   \
		DEFINE_WAIT_FUNC(__wait, fastivc_woken_wake);                                                \
		long __slice = min_t(long, *(timeo), FASTIVC_WAIT_SLICE), __left = __slice;                  \
		int __rc;                                                                                    \
		add_wait_queue(sk_sleep(sk), &__wait);                                                       \
		__rc = sk_wait_event(sk, &__left, cond, &__wait);                                            \
		remove_wait_queue(sk_sleep(sk), &__wait);                                                    \
		if (*(timeo) != MAX_SCHEDULE_TIMEOUT)                                                        \
			*(timeo) -= __slice - __left;                                                        \
		if (!__left && __rc > 0) /* the slice ran out, yet there was news: its event was lost */     \
			atomic64_inc(&fastivc_stats.lost_wakeups);                                           \
		__rc;                                                                                        \
	})

/*
 * Before our FIN (shutdown, close; lock held): an early switch the receiver has not settled yet is waited for, up
 * to its create timeout, then taken back (its bytes go on TCP before the FIN). The receiver answers within
 * milliseconds: the wait is one EVENT_CREATE_TUNNEL and its accept, and only for a connection closed right after
 * its first send.
 */
/* Lock-free (RCU: the tunnel may be released meanwhile): is the early tunnel settled, or gone? */
static bool tx_early_wake_cond(struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t;
	bool done;

	if (!READ_ONCE(ctx->tx_early) || READ_ONCE(ctx->tx_state) != FIVC_DIR_OPEN)
		return true;
	rcu_read_lock();
	t = READ_ONCE(ctx->tx);
	done = !t || READ_ONCE(t->ctrl->rx_state) != IVC_RX_NONE;
	rcu_read_unlock();
	return done;
}

#define FASTIVC_EARLY_FIN_WAIT HZ
static void tx_early_settle(struct sock *sk, struct fastivc_sock *ctx)
{
	unsigned long until = jiffies + FASTIVC_EARLY_FIN_WAIT;
	u64 waited_from = 0;

	while (ctx->mode == FIVC_MODE_TUNNEL && ctx->tx_early && ctx->tx_state == FIVC_DIR_OPEN &&
	       !tx_early_settled(ctx)) {
		long timeo = HZ / 50;

		/* no answer in a second (it normally takes milliseconds), or TCP is gone: back to TCP, then the FIN */
		if (time_after(jiffies, until) || sk->sk_err ||
		    !((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT))) {
			tx_early_take_back(sk, ctx, FIVC_R_PEER_TIMEOUT);
			break;
		}
		owner_events(sk, ctx); /* a REJECT left to us */
		if (!ctx->tx_early || ctx->tx_state != FIVC_DIR_OPEN || !ctx->tx)
			break;
		ivc_tx_want(&ctx->tx->tx, ctx->tx->ctrl); /* the receiver's accept raises an event for us then */
		if (tx_early_settled(ctx))
			break;
		if (!waited_from) {
			waited_from = ktime_get_ns();
			atomic64_inc(&fastivc_stats.early_fin_waits);
		}
		if (signal_pending(current)) { /* close and shutdown do not fail for a signal: short sleeps */
			release_sock(sk);
			schedule_timeout_uninterruptible(timeo);
			lock_sock(sk);
		} else {
			/* events left to us are run by the SEM meanwhile (the lock is free while we sleep) */
			SLICED_WAIT(sk, &timeo, tx_early_wake_cond(ctx));
		}
	}
	if (waited_from)
		atomic64_add(div_u64(ktime_get_ns() - waited_from, NSEC_PER_USEC), &fastivc_stats.early_fin_wait_us);
}

static int tx_wait(struct sock *sk, struct fastivc_sock *ctx, long *timeo, bool drain)
{
	int rc;

	if (ctx->tx && ctx->tx_state == FIVC_DIR_OPEN)
		sem_steer_virq();
	rc = SLICED_WAIT(sk, timeo, tx_wake_cond(sk, ctx, drain));
	return rc < 0 ? rc : 0;
}

/*
 * Raises a data event. Returns true if it was raised; the caller marks the peer's request served only then. A raise
 * the DEM refuses for now (-EBUSY: the peer has 512 undelivered records; -ENOSPC: no record left) stays pending in
 * ctx->kick_pending: the next commit or free tries again, and so does the SEM's tick (fastivc_sock_retry_kicks), so
 * a poller waits at most a tick for it.
 */
static bool kick(struct fastivc_sock *ctx, u32 ev)
{
	int rc = dem_raise(ctx, ev, NULL);
	char conn[FIVC_CONN_STR];

	switch (rc) {
	case 0:
		if (ctx->kick_pending & ev)
			WRITE_ONCE(ctx->kick_pending, ctx->kick_pending & ~ev);
		return true;
	case -EBUSY:
	case -ENOSPC:
	case -ENOMEM: /* Xen is short of memory for a record: as short of room, for now */
		atomic64_inc(&fastivc_stats.kicks_failed);
		WRITE_ONCE(ctx->kick_pending, ctx->kick_pending | ev);
		return false;
	case -ENOENT: /* the peer's address left the DEM, or its domain is dying: nobody is at the other end */
	case -ESRCH:
		fastivc_peer_gone(ctx);
		return false;
	default:
		/*
		 * Not the peer's doing, so not a violation: -EACCES (the toolstack gave our own address to another domain:
		 * this connection's address is no longer ours) or an error of the DEM. The connection cannot go on.
		 */
		pr_warn_ratelimited("fastivc: %s: the DEM refused an event (%d): connection %s\n",
				    fastivc_conn_str(conn, ctx), rc,
				    rc == -EACCES ? "aborted" : "reset");
		abort_conn(ctx, FIVC_R_DEM_ERROR, rc == -EACCES ? ECONNABORTED : ECONNRESET, rc != -EACCES);
		return false;
	}
}

/*
 * EVENT_SEND_DATA, if the receiver asked for it since the last one that was raised. Lock held. Returns false if the
 * direction is no longer open afterwards (a refused raise ended the connection and released t: don't touch it).
 */
static bool tx_kick(struct fastivc_sock *ctx, struct ivc_tunnel *t)
{
	u32 w;

	if (ivc_tx_need_kick(&t->tx, t->ctrl, &w) && kick(ctx, EVTMGR_EVENT_SEND_DATA))
		ivc_tx_kicked(&t->tx, w);
	return ctx->tx == t && ctx->tx_state == FIVC_DIR_OPEN;
}

/* EVENT_RECV_GET_DATA, if the sender asked for it and enough channels are free. Lock held. As tx_kick(). */
static bool rx_kick(struct fastivc_sock *ctx, struct ivc_tunnel *t)
{
	u32 w;

	if (ivc_rx_need_kick(&t->rx, t->ctrl, &w) && kick(ctx, EVTMGR_EVENT_RECV_GET_DATA))
		ivc_rx_kicked(&t->rx, w);
	return ctx->rx == t && ctx->rx_state == FIVC_DIR_OPEN;
}

/* Sends msg through the open tunnel. Lock held. Returns bytes sent or -errno. */
static int tx_tunnel(struct sock *sk, struct fastivc_sock *ctx, struct msghdr *msg)
{
	long timeo = sock_sndtimeo(sk, msg->msg_flags & MSG_DONTWAIT);
	unsigned int fault = FAULT_NONE;
	size_t copied = 0;
	int err = 0;

	while (msg_data_left(msg)) {
		struct ivc_tunnel *t;
		u32 chan, off, n, c;
		s64 room;

		err = tx_error(sk, ctx);
		if (err)
			break;
		t = ctx->tx;
		if (!fault) {
			/* a fault goes into a channel of its own: the header a reader has not looked at yet */
			fault = take_fault(ctx, 1u << FAULT_GEN | 1u << FAULT_SIZE | 1u << FAULT_PEND_READ);
			if (fault)
				t->no_reuse = true; /* a tunnel we broke on purpose is not kept for another connection */
			if (fault && ivc_tx_seal(&t->tx, t->ctrl) && !tx_kick(ctx, t))
				continue; /* the connection ended: tx_error() says how */
		}
		room = ivc_tx_room(&t->tx, t->ctrl, &chan, &off);
		if (room == 0) {
			ivc_tx_want(&t->tx, t->ctrl);
			room = ivc_tx_room(&t->tx, t->ctrl, &chan, &off);
		}
		if (room < 0) {
			fastivc_break(ctx, (int)room);
			err = -ECONNRESET;
			break;
		}
		if (room == 0) {
			WRITE_ONCE(ctx->tx_stalls, ctx->tx_stalls + 1);
			if (!ctx->tx_stall_since || ctx->tx_stall_seq != t->tx.seq) { /* TCP_USER_TIMEOUT's clock */
				WRITE_ONCE(ctx->tx_stall_since, jiffies | 1);
				ctx->tx_stall_seq = t->tx.seq;
			}
			err = -EAGAIN;
			if (!timeo) {
				WRITE_ONCE(ctx->tx_poll_waiting, true);
				if (sk->sk_socket)
					set_bit(SOCKWQ_ASYNC_NOSPACE, &sk->sk_socket->flags); /* SIGIO once room is back */
				break;
			}
			err = sock_intr_errno(timeo);
			if (signal_pending(current))
				break;
			err = tx_wait(sk, ctx, &timeo, false);
			if (err)
				break;
			continue;
		}
		n = min_t(size_t, msg_data_left(msg), room);
		c = ivc_copy_to_chan(t, chan, off, &msg->msg_iter, n);
		if (!c) {
			ivc_tx_abort(&t->tx, t->ctrl);
			err = -EFAULT;
			break;
		}
		switch (fault) {
		case FAULT_GEN:
			WRITE_ONCE(t->ctrl->chan[chan].gen_num, t->tx.seq + 1u + t->nr_channels + 7u);
			ivc_tx_commit(&t->tx, t->ctrl, c);
			break;
		case FAULT_SIZE: /* sealed, so no later commit rewrites the bad size */
			ivc_tx_commit(&t->tx, t->ctrl, c);
			ivc_tx_seal(&t->tx, t->ctrl);
			WRITE_ONCE(t->ctrl->chan[chan].size, (t->channel_size + 1) | IVC_SIZE_SEALED);
			break;
		case FAULT_PEND_READ:
			ivc_tx_commit(&t->tx, t->ctrl, c);
			WRITE_ONCE(t->ctrl->chan[chan].pend_read, IVC_MAX_RECEIVERS + 1);
			break;
		default:
			ivc_tx_commit(&t->tx, t->ctrl, c);
		}
		fault = FAULT_NONE;
		copied += c;
		WRITE_ONCE(ctx->tx_bytes, ctx->tx_bytes + c);
		atomic64_add(c, &fastivc_stats.bytes_tx);
		tx_kick(ctx, t);
		if (c < n) {
			err = -EFAULT;
			break;
		}
	}
	if (copied)
		return copied;
	if (err == -EPIPE)
		return sk_stream_error(sk, msg->msg_flags, err);
	return err;
}

/* MSG_OOB on a tunnelled direction: drain the channels, then continue on TCP (see the top of this file). */
static int tx_revert(struct sock *sk, struct fastivc_sock *ctx, int flags)
{
	long timeo = sock_sndtimeo(sk, flags & MSG_DONTWAIT);
	struct ivc_tunnel *t;
	int err;

	for (;;) {
		err = tx_error(sk, ctx);
		if (err)
			return err;
		t = ctx->tx;
		/* the open channel: the reader frees it once read */
		if (ivc_tx_seal(&t->tx, t->ctrl) && !tx_kick(ctx, t))
			continue; /* the connection ended: tx_error() says how */
		if (ivc_tx_in_flight(&t->tx, t->ctrl) == 0)
			break;
		ivc_tx_want(&t->tx, t->ctrl);
		if (ivc_tx_in_flight(&t->tx, t->ctrl) == 0)
			break;
		if (!timeo)
			return -EAGAIN;
		if (signal_pending(current))
			return sock_intr_errno(timeo);
		err = tx_wait(sk, ctx, &timeo, true);
		if (err)
			return err;
	}
	WRITE_ONCE(t->ctrl->tx_flags, READ_ONCE(t->ctrl->tx_flags) | IVC_TX_REVERTED);
	/* a receiver waiting for data must see the flag: raised whether or not it asked (it may have asked already) */
	kick(ctx, EVTMGR_EVENT_SEND_DATA);
	set_dir(ctx, true, FIVC_DIR_REVERTED);
	WRITE_ONCE(ctx->reason, FIVC_R_OOB);
	fastivc_count_fallback(FIVC_R_OOB);
	return 0;
}

/*
 * MSG_OOB on an open tunnel: TCP sends the urgent byte at once, whether or not the reader has read what came before
 * it, and marks its place in the stream. So the receiver is asked to detach (IVC_TX_DETACH, as before a suspend): it
 * records how far its application read and leaves the tunnel; what it had not read goes again on TCP
 * (FIVC_DIR_RESEND), and the urgent byte after it, where TCP would have put it. Waits up to FASTIVC_OOB_WAIT for the
 * answer (one event each way). -EXDEV: detached, the direction is on TCP (resending first); otherwise the receiver
 * did not answer in time, and the caller drains the channels instead (tx_revert: the reader must read them first).
 * Lock held.
 */
#define FASTIVC_OOB_WAIT HZ
/* Lock-free (RCU): has the receiver answered the detach request, or has the direction moved on? */
static bool oob_wake_cond(struct fastivc_sock *ctx, const struct ivc_tunnel *t)
{
	bool done;
	u32 st;

	rcu_read_lock();
	done = READ_ONCE(ctx->tx) != t || READ_ONCE(ctx->tx_state) != FIVC_DIR_OPEN;
	if (!done) {
		st = READ_ONCE(t->ctrl->rx_state);
		done = st == IVC_RX_DETACHED || rx_done(st);
	}
	rcu_read_unlock();
	return done;
}

static int tx_oob_detach(struct sock *sk, struct fastivc_sock *ctx, int flags)
{
	long wait = min_t(long, FASTIVC_OOB_WAIT, sock_sndtimeo(sk, flags & MSG_DONTWAIT));
	unsigned long until = jiffies + wait;
	struct ivc_tunnel *t = ctx->tx;

	if (!t || ctx->tx_detach_asked || wait <= 0)
		return 0; /* a non-blocking send does not wait for the receiver: the channels drain first (tx_revert) */
	WRITE_ONCE(t->ctrl->tx_flags, READ_ONCE(t->ctrl->tx_flags) | IVC_TX_DETACH);
	dem_raise(ctx, EVTMGR_EVENT_SEND_CLOSE_TUNNEL, NULL); /* a lost event: the peer's tick looks for the flag */
	while (ctx->tx_state == FIVC_DIR_OPEN && ctx->tx == t && time_before(jiffies, until)) {
		long timeo = until - jiffies;

		if (tx_receiver_detached(t)) {
			tx_detached(sk, ctx);
			break;
		}
		if (tx_receiver_closed(ctx, t) || sk->sk_err || signal_pending(current))
			return 0;
		owner_events(sk, ctx);
		if (ctx->tx_state != FIVC_DIR_OPEN || ctx->tx != t)
			break;
		SLICED_WAIT(sk, &timeo, oob_wake_cond(ctx, t));
	}
	return ctx->tx_state == FIVC_DIR_RESEND || ctx->tx_state == FIVC_DIR_TCP ? -EXDEV : 0;
}

/* MSG_OOB on a socket with a tunnel: 0 to go on with TCP's sendmsg/sendpage, or -errno. Lock held. */
static int tx_oob(struct sock *sk, struct fastivc_sock *ctx, int flags)
{
	if (ctx->mode != FIVC_MODE_TUNNEL)
		return 0;
	/* an early tunnel its receiver has not taken yet: its bytes go on TCP first, then the urgent one */
	if (tx_early_take_back(sk, ctx, FIVC_R_OOB)) {
		ctx->tx_oob = true;
		ctx->tx_moving = false;
		ctx->tx_retry_at = 0;
		return 0;
	}
	if (ctx->tx_state == FIVC_DIR_OPEN) {
		int rc = tx_oob_detach(sk, ctx, flags);

		if (rc == -EXDEV) { /* the tunnel's bytes go again on TCP, before the urgent one, as TCP would send them */
			ctx->tx_oob = true;
			ctx->tx_moving = false;
			ctx->tx_retry_at = 0;
			WRITE_ONCE(ctx->reason, FIVC_R_OOB);
			fastivc_count_fallback(FIVC_R_OOB);
			return 0;
		}
		rc = tx_revert(sk, ctx, flags);

		if (rc == -EXDEV) { /* detached meanwhile: the urgent byte follows the resent ones on TCP, for good */
			ctx->tx_moving = false;
			ctx->tx_retry_at = 0;
			rc = 0;
		}
		if (rc == 0)
			ctx->tx_oob = true; /* no tunnel for this direction from now on (tx_start_moving too) */
		return rc;
	}
	ctx->tx_oob = true;
	if (ctx->tx_state == FIVC_DIR_CREATING) {
		tx_fallback(ctx, FIVC_R_OOB);
	} else if (!ctx->tx_created || ctx->tx_retry_at || ctx->tx_moving) {
		ctx->tx_moving = false;
		ctx->tx_created = 1; /* never create one now */
		ctx->tx_retry_at = 0;
		WRITE_ONCE(ctx->reason, FIVC_R_OOB);
		fastivc_count_fallback(FIVC_R_OOB);
	}
	return 0;
}

/*
 * MSG_ZEROCOPY (with SO_ZEROCOPY) on the tunnel: the bytes are copied into the channels before the call returns, so
 * the buffer is the application's again at once. Its completion is posted as TCP posts one for data it had to copy
 * (SO_EE_CODE_ZEROCOPY_COPIED, one notification id per call): an application waiting on the error queue gets it.
 */
static int tx_tunnel_zerocopy(struct sock *sk, struct fastivc_sock *ctx, struct msghdr *msg, size_t size)
{
	struct ubuf_info *uarg = msg_zerocopy_realloc(sk, size, NULL);
	int rc;

	if (!uarg)
		return -ENOBUFS; /* as tcp_sendmsg_locked(): optmem or RLIMIT_MEMLOCK exhausted */
	rc = tx_tunnel(sk, ctx, msg);
	if (rc > 0)
		msg_zerocopy_callback(NULL, uarg, false); /* the last reference: posts the "copied" completion */
	else
		msg_zerocopy_put_abort(uarg, true);      /* nothing sent: the id is given back, nothing posted */
	return rc;
}

/*
 * Did a send through the tunnel stop because the direction went back to TCP (tx_error's -EXDEV), with bytes of the
 * call left? Then the caller sends them on TCP. Lock held.
 */
static bool tx_moved_on(const struct fastivc_sock *ctx, struct msghdr *msg, int rc)
{
	return rc == -EXDEV || (rc > 0 && msg_data_left(msg) && ctx->mode == FIVC_MODE_TUNNEL &&
				(ctx->tx_state == FIVC_DIR_RESEND || ctx->tx_state == FIVC_DIR_TCP ||
				 ctx->tx_state == FIVC_DIR_REVERTED));
}

/*
 * Before a send goes to TCP (lock held): a detached tunnel's bytes go first (FIVC_DIR_RESEND). 0, or -errno for
 * the call (-EAGAIN: a non-blocking send found no room for them).
 */
static int tx_to_tcp(struct sock *sk, struct fastivc_sock *ctx, int flags)
{
	if (likely(ctx->tx_state != FIVC_DIR_RESEND))
		return 0;
	return tx_resend_flush(sk, ctx, flags);
}

static int fastivc_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
{
	struct fastivc_sock *ctx = fastivc_ctx(sk);
	int rc, sent = 0;

	swap_ops(sk);
	lock_sock(sk);
	if (unlikely(msg->msg_flags & MSG_OOB)) {
		rc = tx_oob(sk, ctx, msg->msg_flags);
		if (rc) {
			release_sock(sk);
			return rc == -EPIPE ? sk_stream_error(sk, msg->msg_flags, rc) : rc;
		}
	}
	owner_events(sk, ctx);
	tx_prepare(sk, ctx);
	if (ctx->tx_state == FIVC_DIR_OPEN) {
		/* io_uring's zerocopy sends bring their own notification (msg_ubuf): copying needs nothing more for them */
		if (unlikely((msg->msg_flags & MSG_ZEROCOPY) && size && sock_flag(sk, SOCK_ZEROCOPY) && !msg->msg_ubuf))
			rc = tx_tunnel_zerocopy(sk, ctx, msg, size);
		else
			rc = tx_tunnel(sk, ctx, msg);
		if (!tx_moved_on(ctx, msg, rc)) {
			release_sock(sk);
			return rc;
		}
		sent = max(rc, 0);
		if (sent)
			msg->msg_flags &= ~MSG_ZEROCOPY; /* this call's notification was posted for the tunnel's part */
	}
	/* under the lock, and before the flush may sleep: tx_prepare() sees it before it can switch */
	atomic_inc(&ctx->tx_tcp_senders);
	rc = tx_to_tcp(sk, ctx, msg->msg_flags);
	if (rc) {
		atomic_dec(&ctx->tx_tcp_senders);
		release_sock(sk);
		return sent ? sent : (rc == -EPIPE ? sk_stream_error(sk, msg->msg_flags, rc) : rc);
	}
	release_sock(sk);
	rc = base_prot->sendmsg(sk, msg, msg_data_left(msg));
	atomic_dec(&ctx->tx_tcp_senders);
	return sent ? (rc > 0 ? sent + rc : sent) : rc;
}

/* fault_inject switch_in_batch: wait (up to 1 s) until the receiver has mapped the tunnel; lock not held */
static void fault_wait_mapped(struct sock *sk, struct fastivc_sock *ctx)
{
	unsigned long until = jiffies + HZ;
	bool mapped = false;

	while (!mapped && time_before(jiffies, until)) {
		msleep(1);
		lock_sock(sk);
		mapped = ctx->tx_state != FIVC_DIR_CREATING || READ_ONCE(ctx->tx->ctrl->rx_state) == IVC_RX_MAPPED;
		release_sock(sk);
	}
}

static int fastivc_sendpage(struct sock *sk, struct page *page, int offset, size_t size, int flags)
{
	struct fastivc_sock *ctx = fastivc_ctx(sk);
	struct bio_vec bvec = { .bv_page = page, .bv_offset = offset, .bv_len = size };
	struct msghdr msg = { .msg_flags = flags };
	bool delay;
	int rc, sent = 0;

	lock_sock(sk);
	if (unlikely(flags & MSG_OOB)) {
		rc = tx_oob(sk, ctx, flags);
		if (rc) {
			release_sock(sk);
			return rc == -EPIPE ? sk_stream_error(sk, flags, rc) : rc;
		}
	}
	owner_events(sk, ctx);
	tx_prepare(sk, ctx);
	if (ctx->tx_state == FIVC_DIR_OPEN) {
		iov_iter_bvec(&msg.msg_iter, WRITE, &bvec, 1, size);
		rc = tx_tunnel(sk, ctx, &msg);
		if (!tx_moved_on(ctx, &msg, rc)) {
			release_sock(sk);
			return rc;
		}
		sent = max(rc, 0);
		offset += sent;
		size -= sent;
	}
	atomic_inc(&ctx->tx_tcp_senders); /* before the flush may sleep, as in fastivc_sendmsg() */
	rc = tx_to_tcp(sk, ctx, flags);
	if (rc) {
		atomic_dec(&ctx->tx_tcp_senders);
		release_sock(sk);
		return sent ? sent : (rc == -EPIPE ? sk_stream_error(sk, flags, rc) : rc);
	}
	delay = ctx->tx_state == FIVC_DIR_CREATING && (flags & MSG_SENDPAGE_NOTLAST) &&
		take_fault(ctx, 1u << FAULT_SWITCH_IN_BATCH);
	release_sock(sk);
	rc = base_prot->sendpage(sk, page, offset, size, flags);
	atomic_dec(&ctx->tx_tcp_senders);
	if (unlikely(delay))
		fault_wait_mapped(sk, ctx);
	return sent ? (rc > 0 ? sent + rc : sent) : rc;
}

/* ---- receiver ---- */

enum rx_phase { PH_TCP, PH_TCP_UNTIL, PH_TUNNEL, PH_BROKEN };

/* TCP's unread data bytes (the peer's FIN, once received, is not one: tcp_close() does not count it either) */
static u32 tcp_unread_bytes(const struct sock *sk)
{
	const struct tcp_sock *tp = tcp_sk(sk);
	u32 n = READ_ONCE(tp->rcv_nxt) - READ_ONCE(tp->copied_seq);

	return n && sock_flag(sk, SOCK_DONE) ? n - 1 : n;
}

static bool tcp_has_data(struct sock *sk)
{
	const struct tcp_sock *tp = tcp_sk(sk);

	return READ_ONCE(tp->rcv_nxt) != READ_ONCE(tp->copied_seq);
}

/*
 * The TCP sequence number of the next data byte to read, which is what switch_seq is compared with. That is
 * copied_seq, except once the peer's FIN was read: the FIN takes a sequence number but carries no byte, and
 * tcp_recvmsg() consumes it together with the data of the segment it rides on. A sender that switches and then
 * closes while TCP still holds its last bytes sends them with the FIN, so the reader that reads exactly up to
 * switch_seq finds copied_seq one past it (the FIN read, SOCK_DONE, nothing left: copied_seq == rcv_nxt).
 */
static u32 rx_data_seq(const struct sock *sk)
{
	const struct tcp_sock *tp = tcp_sk(sk);
	u32 seq = READ_ONCE(tp->copied_seq);

	if (sock_flag(sk, SOCK_DONE) && seq == READ_ONCE(tp->rcv_nxt))
		seq--;
	return seq;
}

/* Where the next byte comes from. Lock held. */
static enum rx_phase rx_phase(struct sock *sk, struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t = ctx->rx;

	if (!t || ctx->rx_state != FIVC_DIR_OPEN)
		return PH_TCP;
	if (!ctx->rx_switched) {
		u32 f = READ_ONCE(t->ctrl->tx_flags), seq;

		if (!(f & IVC_TX_SWITCHED))
			return PH_TCP;
		virt_rmb(); /* the flag before switch_seq */
		seq = READ_ONCE(t->ctrl->switch_seq);
		/* the switch cannot be behind what we already read from TCP */
		if (before(seq, rx_data_seq(sk))) {
			fastivc_break(ctx, -IVC_E_LAYOUT);
			return PH_BROKEN;
		}
		WRITE_ONCE(ctx->rx_switch_seq, seq);
		smp_wmb(); /* for the lock-free readers: switch_seq before the flag */
		WRITE_ONCE(ctx->rx_switched, true);
	}
	if (rx_data_seq(sk) != ctx->rx_switch_seq)
		return PH_TCP_UNTIL;
	return PH_TUNNEL;
}

/*
 * Lock-free: is there anything for a sleeping reader to look at? Mirrors rx_phase(): while TCP data from before the
 * switch is outstanding only TCP can wake us, so a published channel does not make the reader spin.
 */
static bool rx_wake_cond(struct sock *sk, struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t;
	bool news;

	/* a tunnel mapped while this reader waited: it publishes it (rx_publish) */
	if (READ_ONCE(sk->sk_err) || (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN) || READ_ONCE(ctx->rx_unpublished))
		return true;
	rcu_read_lock(); /* tunnels are freed after a grace period (ivc_tunnel_release) */
	t = READ_ONCE(ctx->rx);
	if (!t || READ_ONCE(ctx->rx_state) != FIVC_DIR_OPEN)
		news = tcp_has_data(sk);
	else if (!READ_ONCE(ctx->rx_switched))
		news = tcp_has_data(sk) || (READ_ONCE(t->ctrl->tx_flags) & IVC_TX_SWITCHED);
	else if (rx_data_seq(sk) != READ_ONCE(ctx->rx_switch_seq))
		news = tcp_has_data(sk);
	else
		news = ivc_rx_news(&t->rx, t->ctrl) || (READ_ONCE(t->ctrl->tx_flags) & IVC_TX_REVERTED);
	rcu_read_unlock();
	return news;
}

static void rx_wait(struct sock *sk, struct fastivc_sock *ctx, long *timeo)
{
	if (ctx->rx && ctx->rx_state == FIVC_DIR_OPEN)
		sem_steer_virq(); /* the wake-up comes with VIRQ_EVTMGR: have it delivered here */
	SLICED_WAIT(sk, timeo, rx_wake_cond(sk, ctx));
}

/*
 * Reads from the tunnel into msg. Lock held. Returns bytes read (0: nothing ready) or -errno. MSG_PEEK reads on into
 * the next channels while each one before is sealed, without consuming.
 */
static int rx_tunnel(struct sock *sk, struct fastivc_sock *ctx, struct msghdr *msg, size_t len, int flags)
{
	struct ivc_tunnel *t = ctx->rx;
	bool peek = flags & MSG_PEEK;
	u32 ahead = 0, avail, sealed, chan, off, n, c;
	size_t copied = 0;
	int r, err = 0;

	while (copied < len) {
		r = ivc_rx_avail(&t->rx, t->ctrl, ahead, &avail, &sealed);
		if (r < 0) {
			fastivc_break(ctx, r);
			return copied ? copied : -ECONNRESET;
		}
		if (r == 0)
			break;
		chan = ivc_rx_chan(&t->rx, ahead, &off);
		n = min_t(size_t, avail, len - copied);
		/* MSG_TRUNC: as tcp_recvmsg(), the bytes are taken (or, with MSG_PEEK, counted) without being copied */
		c = (flags & MSG_TRUNC) ? n : ivc_copy_from_chan(t, chan, off, &msg->msg_iter, n);
		if (!c) {
			err = -EFAULT;
			break;
		}
		copied += c;
		if (peek) {
			if (c < avail || !sealed)
				break;
			ahead++;
		} else {
			ivc_rx_consume(&t->rx, t->ctrl, c);
			WRITE_ONCE(ctx->rx_bytes, ctx->rx_bytes + c);
			atomic64_add(c, &fastivc_stats.bytes_rx);
		}
		if (c < n) {
			err = -EFAULT;
			break;
		}
	}
	/* a refused raise may end the connection here (ctx->rx gone): the caller looks again before using it */
	if (ivc_rx_take_freed(&t->rx) || (ctx->kick_pending & EVTMGR_EVENT_RECV_GET_DATA))
		rx_kick(ctx, t);
	return copied ? copied : err;
}

/* An EOF while the tunnel may still hold data would lose it: say what the reader saw. Lock held. */
static void rx_eof_check(struct sock *sk, struct fastivc_sock *ctx, const char *where)
{
	struct ivc_tunnel *t = ctx->rx;
	char conn[FIVC_CONN_STR];
	u32 f;

	if (!t || ctx->rx_state != FIVC_DIR_OPEN)
		return;
	f = READ_ONCE(t->ctrl->tx_flags);
	if (!(f & IVC_TX_SWITCHED) && !ctx->rx_switched)
		return;
	if (ctx->rx_switched && rx_data_seq(sk) == ctx->rx_switch_seq && ivc_rx_ready(&t->rx, t->ctrl) == 0)
		return;
	pr_warn_ratelimited("fastivc: %s: EOF (%s) with the tunnel not drained: flags %#x switched %d switch_seq %u copied_seq %u rcv_nxt %u ready %lld wait_gen %u idx %u off %u have %u gen %u pend %u size %u\n",
			    fastivc_conn_str(conn, ctx), where, f, ctx->rx_switched,
			    READ_ONCE(t->ctrl->switch_seq), tcp_sk(sk)->copied_seq, tcp_sk(sk)->rcv_nxt,
			    (long long)ivc_rx_ready(&t->rx, t->ctrl), t->rx.wait_gen, t->rx.idx, t->rx.off, t->rx.have,
			    READ_ONCE(t->ctrl->chan[t->rx.idx].gen_num), READ_ONCE(t->ctrl->chan[t->rx.idx].pend_read),
			    READ_ONCE(t->ctrl->chan[t->rx.idx].size));
}

/*
 * A read goes through the tunnel's receive path: a tunnel mapped since may be used now (see the top of this file).
 * Lock held.
 */
static void rx_publish(struct fastivc_sock *ctx)
{
	if (likely(!ctx->rx_unpublished))
		return;
	WRITE_ONCE(ctx->rx_unpublished, false);
	if (ctx->rx && ctx->rx_state == FIVC_DIR_OPEN)
		WRITE_ONCE(ctx->rx->ctrl->rx_state, IVC_RX_MAPPED);
}

/*
 * recv() of 0 bytes, answered as tcp_recvmsg() answers it: 0 at once when there is something to read, -EAGAIN when
 * there is nothing and no time to wait, else one wait for data (or the timeout, or a signal) and then 0. Before the
 * switch, TCP's own answer is the right one.
 */
static int recv_zero(struct sock *sk, struct fastivc_sock *ctx, struct msghdr *msg, int flags, int *addr_len)
{
	long timeo;
	int err = 0;

	lock_sock(sk);
	owner_events(sk, ctx);
	rx_publish(ctx);
	if (ctx->mode != FIVC_MODE_TUNNEL || rx_phase(sk, ctx) != PH_TUNNEL) {
		release_sock(sk);
		return base_prot->recvmsg(sk, msg, 0, flags, addr_len);
	}
	timeo = sock_rcvtimeo(sk, flags & MSG_DONTWAIT);
	if (!rx_wake_cond(sk, ctx)) {
		if (!timeo) {
			err = -EAGAIN;
		} else if (signal_pending(current)) {
			err = sock_intr_errno(timeo);
		} else {
			while (timeo && ctx->rx && !rx_wake_cond(sk, ctx) && !signal_pending(current)) {
				ivc_rx_want(&ctx->rx->rx, ctx->rx->ctrl);
				rx_wait(sk, ctx, &timeo);
			}
		}
	}
	release_sock(sk);
	return err;
}

/*
 * Lock-free (t under RCU): the switch's TCP sequence number, once the sender switched: the one this reader recorded
 * (rx_phase), else the sender's in the control page. false: not switched yet.
 */
static bool rx_switch_seq(struct fastivc_sock *ctx, struct ivc_tunnel *t, u32 *seq)
{
	if (READ_ONCE(ctx->rx_switched)) {
		smp_rmb(); /* the flag before switch_seq */
		*seq = READ_ONCE(ctx->rx_switch_seq);
		return true;
	}
	if (!(READ_ONCE(t->ctrl->tx_flags) & IVC_TX_SWITCHED))
		return false;
	virt_rmb(); /* the flag before switch_seq */
	*seq = READ_ONCE(t->ctrl->switch_seq);
	return true;
}

/*
 * Lock-free (it takes RCU itself): bytes a reader could take now, in order: TCP's up to the switch, then, once TCP
 * is read up to it, the tunnel's. An estimate (another reader may be taking bytes), good for deciding whether to
 * sleep or to report readable; a violation reads as no bytes (the owner finds it on its next look).
 */
static u64 rx_queued(struct sock *sk, struct fastivc_sock *ctx)
{
	const struct tcp_sock *tp = tcp_sk(sk);
	u32 tcp = READ_ONCE(tp->rcv_nxt) - READ_ONCE(tp->copied_seq), until, seq;
	struct ivc_tunnel *t;
	u64 queued = tcp;
	s64 ready;

	if (sock_flag(sk, SOCK_DONE) && tcp)
		queued = --tcp; /* the FIN carries no byte */
	rcu_read_lock(); /* tunnels are freed after a grace period (ivc_tunnel_release) */
	t = READ_ONCE(ctx->rx);
	if (!t || READ_ONCE(ctx->rx_state) != FIVC_DIR_OPEN || !rx_switch_seq(ctx, t, &seq))
		goto out;
	until = seq - rx_data_seq(sk);
	/* TCP's bytes up to the switch go first (a switch_seq behind them is refused by rx_phase()) */
	if (tcp < until || until > (1u << 30)) {
		queued = min(tcp, until);
		goto out;
	}
	ready = ivc_rx_ready_peek(&t->rx, t->ctrl); /* writes nothing: callers may not own the receiver's state */
	queued = until + (ready > 0 ? ready : 0);
out:
	rcu_read_unlock();
	return queued;
}

/*
 * MSG_PEEK with a target above one byte (MSG_WAITALL, SO_RCVLOWAT): tcp_recvmsg() waits until the target is queued
 * (or EOF, an error, the timeout, a signal) and then copies without consuming. This waits the same way, counting
 * TCP's bytes up to the switch and the tunnel's after it, and then peeks once across both: TCP's part, then the
 * channels'. Lock held on entry and exit.
 */
static int recv_peek(struct sock *sk, struct fastivc_sock *ctx, struct msghdr *msg, size_t len, int flags,
		     size_t target, int *addr_len)
{
	long timeo = sock_rcvtimeo(sk, flags & MSG_DONTWAIT);
	unsigned int idle = 0;
	int copied = 0, r;
	u64 queued;

	for (;;) {
		enum rx_phase ph;
		s64 ready;

		owner_events(sk, ctx);
		rx_publish(ctx); /* a read through the module: a tunnel mapped meanwhile may be used */
		if (ctx->mode != FIVC_MODE_TUNNEL) { /* TCP alone from here: its own peek waits as it should */
			release_sock(sk);
			r = base_prot->recvmsg(sk, msg, len, flags, addr_len);
			lock_sock(sk);
			return r;
		}
		ph = rx_phase(sk, ctx);
		if (ph == PH_BROKEN)
			return -ECONNRESET;
		if (ph == PH_TUNNEL) {
			/* the owner's look: a violation breaks the connection, channels read to their end are freed */
			ready = ivc_rx_ready(&ctx->rx->rx, ctx->rx->ctrl);
			if (ready < 0) {
				fastivc_break(ctx, (int)ready);
				return -ECONNRESET;
			}
			if (ivc_rx_take_freed(&ctx->rx->rx))
				rx_kick(ctx, ctx->rx);
			if (!ctx->rx || ctx->rx_state != FIVC_DIR_OPEN)
				continue; /* a refused raise ended it: TCP says how */
			if (ready == 0 && (READ_ONCE(ctx->rx->ctrl->tx_flags) & IVC_TX_REVERTED)) {
				set_dir(ctx, false, FIVC_DIR_REVERTED); /* the rest comes on TCP */
				continue;
			}
		}
		queued = rx_queued(sk, ctx);
		if (queued >= target || sk->sk_err || (sk->sk_shutdown & RCV_SHUTDOWN) || sk->sk_state == TCP_CLOSE ||
		    !timeo || signal_pending(current))
			break;
		if (ctx->rx && ctx->rx_state == FIVC_DIR_OPEN) {
			ivc_rx_want(&ctx->rx->rx, ctx->rx->ctrl);
			sem_steer_virq();
		}
		SLICED_WAIT(sk, &timeo, rx_queued(sk, ctx) != queued || READ_ONCE(sk->sk_err) ||
			    (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN));
		if (++idle > 1)
			cond_resched(); /* a count that keeps changing without reaching the target must not spin */
	}
	if (rx_phase(sk, ctx) != PH_TUNNEL) {
		size_t want = len;
		u32 until = 0;

		if (rx_phase(sk, ctx) == PH_TCP_UNTIL) {
			until = ctx->rx_switch_seq - rx_data_seq(sk);
			want = min_t(size_t, want, until);
		}
		release_sock(sk);
		r = base_prot->recvmsg(sk, msg, want, (flags | MSG_DONTWAIT) & ~MSG_WAITALL, addr_len);
		lock_sock(sk);
		if (r < 0 && r != -EAGAIN)
			return r;
		copied = max(r, 0);
		/* TCP's part ends at the switch: the channels' part follows it */
		if (!until || copied != until || copied >= len || !ctx->rx || ctx->rx_state != FIVC_DIR_OPEN)
			goto out;
	}
	r = rx_tunnel(sk, ctx, msg, len - copied, flags);
	if (r < 0 && !copied)
		return r;
	copied += max(r, 0);
out:
	if (copied)
		return copied;
	if (sk->sk_err)
		return sock_error(sk);
	if (sk->sk_shutdown & RCV_SHUTDOWN)
		return 0;
	if (sk->sk_state == TCP_CLOSE)
		return -ENOTCONN;
	if (!timeo)
		return -EAGAIN;
	return sock_intr_errno(timeo);
}

static int fastivc_recvmsg(struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len)
{
	struct fastivc_sock *ctx = fastivc_ctx(sk);
	size_t copied = 0, target;
	unsigned int idle = 0;
	long timeo;
	int err = 0, r;

	if (unlikely(flags & (MSG_OOB | MSG_ERRQUEUE)))
		return base_prot->recvmsg(sk, msg, len, flags, addr_len);
	if (unlikely(!len))
		return recv_zero(sk, ctx, msg, flags, addr_len);
	swap_ops(sk);
	lock_sock(sk);
	timeo = sock_rcvtimeo(sk, flags & MSG_DONTWAIT);
	target = sock_rcvlowat(sk, flags & MSG_WAITALL, len);
	if (unlikely((flags & MSG_PEEK) && target > 1 && ctx->mode == FIVC_MODE_TUNNEL)) {
		r = recv_peek(sk, ctx, msg, len, flags, target, addr_len);
		release_sock(sk);
		return r;
	}
	for (;;) {
		enum rx_phase ph;
		size_t copied_before = copied;

		owner_events(sk, ctx);
		rx_publish(ctx); /* a tunnel mapped while we waited */
		ph = ctx->mode == FIVC_MODE_TUNNEL ? rx_phase(sk, ctx) : PH_TCP;

		if (ph == PH_BROKEN) {
			err = -ECONNRESET;
			break;
		}
		if (ph != PH_TUNNEL) {
			if (tcp_has_data(sk) || sk->sk_err || (sk->sk_shutdown & RCV_SHUTDOWN) ||
			    sk->sk_state == TCP_CLOSE || ctx->mode != FIVC_MODE_TUNNEL) {
				size_t want = len - copied;

				if (ph == PH_TCP_UNTIL)
					want = min_t(size_t, want, ctx->rx_switch_seq - rx_data_seq(sk));
				release_sock(sk);
				r = base_prot->recvmsg(sk, msg, want,
						       ctx->mode == FIVC_MODE_TUNNEL ? (flags | MSG_DONTWAIT) & ~MSG_WAITALL :
						       flags, addr_len);
				lock_sock(sk);
				if (r > 0) {
					copied += r;
					if ((flags & MSG_PEEK) || copied >= target || ctx->mode != FIVC_MODE_TUNNEL)
						break;
					continue;
				}
				if (r == 0) {
					/* FIN: unless the tunnel carries the rest, this is the end */
					if (ctx->mode == FIVC_MODE_TUNNEL && rx_phase(sk, ctx) == PH_TUNNEL)
						continue;
					rx_eof_check(sk, ctx, "tcp");
					break;
				}
				if (r != -EAGAIN || ctx->mode != FIVC_MODE_TUNNEL) {
					if (!copied)
						err = r;
					break;
				}
			}
		} else {
			r = rx_tunnel(sk, ctx, msg, len - copied, flags);
			if (r < 0) {
				if (!copied)
					err = r;
				break;
			}
			if (r > 0) {
				copied += r;
				if ((flags & MSG_PEEK) || copied >= target)
					break;
				continue;
			}
			/* the tunnel is empty, or a refused raise just ended the connection (then TCP says how) */
			if (!ctx->rx || ctx->rx_state != FIVC_DIR_OPEN)
				continue;
			if (READ_ONCE(ctx->rx->ctrl->tx_flags) & IVC_TX_REVERTED) {
				set_dir(ctx, false, FIVC_DIR_REVERTED);
				continue;
			}
			if (sk->sk_err) {
				if (!copied)
					err = sock_error(sk);
				break;
			}
			if (sk->sk_shutdown & RCV_SHUTDOWN) {
				rx_eof_check(sk, ctx, "tunnel");
				break; /* the peer's FIN, after all its tunnel data */
			}
		}
		/* nothing to read now */
		if (copied != copied_before)
			idle = 0;
		if (copied >= target || (copied && (flags & MSG_PEEK)))
			break;
		if (!timeo) {
			if (!copied) {
				err = -EAGAIN;
				WRITE_ONCE(ctx->rx_poll_waiting, true); /* an O_ASYNC reader waits for SIGIO now */
			}
			break;
		}
		if (signal_pending(current)) {
			if (!copied)
				err = sock_intr_errno(timeo);
			break;
		}
		if (ctx->rx && ctx->rx_state == FIVC_DIR_OPEN)
			ivc_rx_want(&ctx->rx->rx, ctx->rx->ctrl);
		/*
		 * Sleeps unless there is news; releases the socket lock either way, so TCP's backlog is processed.
		 * Rounds without progress also yield the CPU: a reader must never spin with the lock held.
		 */
		rx_wait(sk, ctx, &timeo);
		if (++idle > 1)
			cond_resched();
	}
	/*
	 * After a read, new data raises EVENT_SEND_DATA if someone else waits on the socket, as new TCP data wakes a
	 * socket: an epoll waiter (edge-triggered ones included) polls only after a wake-up, so it must get one for new
	 * bytes whether or not this read drained the tunnel. If it did and bytes came in meanwhile, wake whoever waits
	 * now. A reader alone (blocking reads, no poller) asks only when it is about to sleep, so a busy stream runs
	 * without events.
	 */
	if (ctx->mode == FIVC_MODE_TUNNEL && ctx->rx && ctx->rx_state == FIVC_DIR_OPEN && sk_has_waiters(sk)) {
		bool drained = !rx_wake_cond(sk, ctx);

		ivc_rx_want(&ctx->rx->rx, ctx->rx->ctrl);
		if (drained && rx_wake_cond(sk, ctx))
			fastivc_wake(sk, EPOLLIN | EPOLLRDNORM);
	}
	release_sock(sk);
	return err ? err : copied;
}

/* Lock-free: has the reader reached the switch (read TCP up to switch_seq)? Only then is tunnel data readable. */
static bool rx_at_switch(struct sock *sk, struct fastivc_sock *ctx, struct ivc_tunnel *t)
{
	u32 seq;

	return rx_switch_seq(ctx, t, &seq) && rx_data_seq(sk) == seq;
}

/*
 * Lock-free, from tcp_poll(): tunnel data makes the socket readable, once the reader has read TCP up to the switch
 * (before that tcp_poll() speaks for TCP's bytes; a channel must not make a poller spin on a recv() that returns
 * EAGAIN). When there is none, the poller asks for EVENT_SEND_DATA (also before the switch: the sender's first
 * channel must wake an epoll waiter).
 */
static bool fastivc_sock_is_readable(struct sock *sk)
{
	struct fastivc_sock *ctx = fastivc_ctx(sk);
	int lowat = READ_ONCE(sk->sk_rcvlowat);
	struct ivc_tunnel *t;
	bool ready = false;

	if (!ctx)
		return false;
	rcu_read_lock();
	t = READ_ONCE(ctx->rx);
	if (t && READ_ONCE(ctx->rx_state) == FIVC_DIR_OPEN) {
		bool at_switch = rx_at_switch(sk, ctx, t);

		/* SO_RCVLOWAT: as tcp_poll(), readable once that many bytes are queued (TCP's before the switch included) */
		ready = at_switch && (READ_ONCE(t->ctrl->tx_flags) & IVC_TX_REVERTED);
		if (!ready)
			ready = lowat > 1 ? rx_queued(sk, ctx) >= lowat : at_switch && ivc_rx_poll_news(&t->rx, t->ctrl);
		if (!ready) {
			ivc_rx_want(&t->rx, t->ctrl); /* tell the sender a poller waits, then look again */
			ready = lowat > 1 ? rx_queued(sk, ctx) >= lowat : at_switch && ivc_rx_poll_news(&t->rx, t->ctrl);
			if (!ready)
				WRITE_ONCE(ctx->rx_poll_waiting, true); /* the tick's safety net (fastivc_sock_wake_check) */
			/* a channel read to its end, then sealed: no read will give it back, and its sender may wait */
			if (!ready && at_switch && ivc_rx_news(&t->rx, t->ctrl) && !ivc_rx_poll_news(&t->rx, t->ctrl))
				fastivc_sem_queue_release(ctx);
		}
	}
	rcu_read_unlock();
	return ready;
}

static __poll_t fastivc_poll(struct file *file, struct socket *sock, poll_table *wait)
{
	struct sock *sk = sock->sk;
	struct fastivc_sock *ctx = fastivc_ctx(sk);
	__poll_t mask = tcp_poll(file, sock, wait), waits = 0;
	struct ivc_tunnel *t;

	if (!ctx)
		return mask;
	rcu_read_lock();
	t = READ_ONCE(ctx->tx);
	if (t && READ_ONCE(ctx->tx_state) == FIVC_DIR_OPEN && !(mask & (EPOLLERR | EPOLLHUP))) {
		int free = ivc_tx_writable(&t->tx, t->ctrl);

		if (free == 0) {
			ivc_tx_want(&t->tx, t->ctrl);
			free = ivc_tx_writable(&t->tx, t->ctrl);
			if (free == 0) {
				WRITE_ONCE(ctx->tx_poll_waiting, true);
				waits |= EPOLLOUT;
			}
		}
		if (free)
			mask |= EPOLLOUT | EPOLLWRNORM;
		else
			mask &= ~(EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND);
	}
	rcu_read_unlock();
	if (fastivc_sock_is_readable(sk))
		mask |= EPOLLIN | EPOLLRDNORM;
	else if (READ_ONCE(ctx->rx) && READ_ONCE(ctx->rx_state) == FIVC_DIR_OPEN)
		waits |= EPOLLIN;
	/* the caller asked about a tunnel direction that is not ready: it sleeps until a VIRQ_EVTMGR wake-up */
	if (waits & poll_requested_events(wait))
		sem_steer_virq();
	return mask;
}

/*
 * Bytes the receiver has not consumed from our channels (lock held): a channel counts whole until the receiver gives
 * it back, as the sender cannot see how far into it the reader is. The sizes are ours, but the control page is
 * writable by the peer, so each is clamped to the channel.
 */
static u32 tx_unread(const struct fastivc_sock *ctx)
{
	const struct ivc_tunnel *t = ctx->tx;
	u32 i, sz, n = 0;

	if (ctx->tx_state == FIVC_DIR_RESEND)
		return min_t(u64, tx_resend_left(ctx), U32_MAX); /* not in TCP yet: not sent */
	if (!t || ctx->tx_state != FIVC_DIR_OPEN)
		return 0;
	for (i = 0; i < t->nr_channels; i++) {
		if (!READ_ONCE(t->ctrl->chan[i].pend_read))
			continue;
		sz = READ_ONCE(t->ctrl->chan[i].size) & ~IVC_SIZE_SEALED;
		n += min(sz, t->channel_size);
	}
	return min_t(u64, n, ctx->tx_bytes); /* the peer can write pend_read: never more than we sent */
}

/*
 * SIOCINQ counts the tunnel's readable bytes after TCP's. SIOCOUTQ and SIOCOUTQNSD count, after TCP's, the bytes in
 * our channels that the receiver has not consumed: the tunnel has no acknowledgement apart from the reader taking a
 * channel back, so until then those bytes are both unacknowledged and, for the peer's application, not yet sent
 * (the same count as TCP_INFO's tcpi_notsent_bytes below).
 */
static int fastivc_ioctl(struct sock *sk, int cmd, unsigned long arg)
{
	struct fastivc_sock *ctx = fastivc_ctx(sk);
	const struct tcp_sock *tp = tcp_sk(sk);
	int answ = 0;
	s64 ready;

	if (cmd == SIOCOUTQ || cmd == SIOCOUTQNSD) {
		lock_sock(sk);
		if (sk->sk_state == TCP_LISTEN) {
			release_sock(sk);
			return -EINVAL;
		}
		if (!((1 << sk->sk_state) & (TCPF_SYN_SENT | TCPF_SYN_RECV)))
			answ = READ_ONCE(tp->write_seq) - (cmd == SIOCOUTQ ? tp->snd_una : READ_ONCE(tp->snd_nxt));
		answ += tx_unread(ctx);
		release_sock(sk);
		return put_user(answ, (int __user *)arg);
	}
	if (cmd != SIOCINQ)
		return base_prot->ioctl(sk, cmd, arg);
	lock_sock(sk);
	if (sk->sk_state == TCP_LISTEN) {
		release_sock(sk);
		return -EINVAL;
	}
	answ = tcp_inq(sk);
	rx_publish(ctx);
	if (ctx->rx && ctx->rx_state == FIVC_DIR_OPEN && rx_phase(sk, ctx) == PH_TUNNEL) {
		ready = ivc_rx_ready(&ctx->rx->rx, ctx->rx->ctrl);
		if (ready > 0)
			answ += ready;
		if (ivc_rx_take_freed(&ctx->rx->rx)) /* sealed channels read to their end were released on the way */
			rx_kick(ctx, ctx->rx);
	}
	release_sock(sk);
	return put_user(answ, (int __user *)arg);
}

/*
 * TCP_INFO: TCP's own, with the tunnel's bytes added as TCP would count them: bytes the receiver took back are sent
 * and acknowledged, bytes still in our channels are not sent yet (SIOCOUTQNSD above), and bytes read from the
 * peer's tunnel are received.
 */
static int fastivc_getsockopt(struct sock *sk, int level, int optname, char __user *optval, int __user *optlen)
{
	struct fastivc_sock *ctx = fastivc_ctx(sk);
	struct tcp_info info;
	u32 unread;
	int len;

	if (level != SOL_TCP || optname != TCP_INFO || !ctx)
		return base_prot->getsockopt(sk, level, optname, optval, optlen);
	if (get_user(len, optlen))
		return -EFAULT;
	if (len < 0)
		return -EINVAL;
	tcp_get_info(sk, &info);
	lock_sock(sk);
	unread = tx_unread(ctx);
	/* bytes sent again on TCP after a detach are in TCP's own counts already */
	info.tcpi_bytes_sent += ctx->tx_bytes - min(ctx->tx_bytes, unread + ctx->bytes_resent);
	info.tcpi_bytes_acked += ctx->tx_bytes - min(ctx->tx_bytes, unread + ctx->bytes_resent);
	info.tcpi_notsent_bytes += unread;
	info.tcpi_bytes_received += ctx->rx_bytes;
	release_sock(sk);
	len = min_t(unsigned int, len, sizeof(info));
	if (put_user(len, optlen) || copy_to_user(optval, &info, len))
		return -EFAULT;
	return 0;
}

/* The tunnel part of ending a connection (lock held): both tunnels and the DEM record go. */
static void conn_release(struct fastivc_sock *ctx)
{
	/*
	 * The receiver of an open tunnel needs no close event: it reads to our FIN on TCP, and parks or unmaps the
	 * tunnel at its own close. One still being created is told, so that it unmaps it now.
	 */
	tx_release(ctx, FIVC_DIR_CLOSED, ctx->tx_state == FIVC_DIR_CREATING);
	rx_release(ctx, FIVC_DIR_CLOSED, true);
	/* our record of the connection (broken ones too; the SEM drops what native sockets get, see forget_conn) */
	if (ctx->mode != FIVC_MODE_CLOSED) {
		dem_release(ctx);
		WRITE_ONCE(ctx->mode, FIVC_MODE_CLOSED);
	}
}

/*
 * connect(AF_UNSPEC) (lock held by inet_stream_connect): the connection ends, and so do its tunnels and DEM record,
 * before TCP's disconnect. The socket is plain TCP from then on (mode closed): a new connect() starts a connection
 * that never sees the old peer's channels.
 */
static int fastivc_disconnect(struct sock *sk, int flags)
{
	struct fastivc_sock *ctx = fastivc_ctx(sk);

	if (ctx)
		conn_release(ctx);
	return base_prot->disconnect(sk, flags);
}

/*
 * Our FIN is about to leave (shutdown, close; lock held): a receiver that detaches from now on can no longer get its
 * unread bytes again on TCP (ivc_ring.h "Detach"). Written before we look for its DETACHED (our caller does, after
 * the barrier): of the two sides, at least one sees the other's word.
 */
static void tx_mark_fin(struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t = ctx->tx;

	if (!t || ctx->tx_state != FIVC_DIR_OPEN)
		return;
	virt_wmb(); /* the last commit's size before the flag */
	WRITE_ONCE(t->ctrl->tx_flags, READ_ONCE(t->ctrl->tx_flags) | IVC_TX_FIN);
	virt_mb();
}

/*
 * shutdown(SHUT_WR) (lock held by inet_shutdown): nothing more will be written, so the channel being filled is sealed
 * and its reader gives it back once it has read it. SIOCOUTQ, TCP_INFO and a lingering close then see it consumed.
 */
static void fastivc_shutdown(struct sock *sk, int how)
{
	struct fastivc_sock *ctx = fastivc_ctx(sk);
	struct ivc_tunnel *t;

	if (ctx && (how & SEND_SHUTDOWN) && ctx->mode == FIVC_MODE_TUNNEL) {
		/*
		 * inet_shutdown() has set SEND_SHUTDOWN already, but the FIN leaves only in TCP's shutdown below: a
		 * detached tunnel's bytes are owed before it (and TCP would refuse them now).
		 */
		int rc = 0;

		WRITE_ONCE(sk->sk_shutdown, sk->sk_shutdown & ~SEND_SHUTDOWN);
		tx_early_settle(sk, ctx);
		tx_mark_fin(ctx);
		if (ctx->tx_state == FIVC_DIR_OPEN && tx_receiver_detached(ctx->tx))
			tx_detached(sk, ctx);
		if (ctx->tx_state == FIVC_DIR_RESEND)
			rc = tx_resend_flush_bounded(sk, ctx);
		WRITE_ONCE(sk->sk_shutdown, sk->sk_shutdown | SEND_SHUTDOWN);
		/* bytes owed that TCP could not take: a reset, not a FIN after a hole */
		if (ctx->mode == FIVC_MODE_TUNNEL && ctx->tx_state == FIVC_DIR_RESEND)
			abort_conn(ctx, rc == -EAGAIN ? FIVC_R_NO_MEMORY : FIVC_R_SUSPEND, ECONNRESET, false);
		if (ctx->tx && ctx->tx_state == FIVC_DIR_OPEN) {
			t = ctx->tx;
			if (ivc_tx_seal(&t->tx, t->ctrl))
				tx_kick(ctx, t);
		}
	}
	base_prot->shutdown(sk, how);
}

/* Lock-free: is the lingering close done (every channel taken back, or nobody left to take them)? */
static bool linger_done(struct sock *sk, struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t;
	bool done;

	if (READ_ONCE(sk->sk_err) || READ_ONCE(ctx->tx_peer_closed) || READ_ONCE(ctx->tx_state) != FIVC_DIR_OPEN)
		return true;
	rcu_read_lock();
	t = READ_ONCE(ctx->tx);
	done = !t || tx_receiver_closed(ctx, t) || tx_receiver_detached(t) || ivc_tx_in_flight(&t->tx, t->ctrl) == 0;
	rcu_read_unlock();
	return done;
}

/*
 * close() with SO_LINGER (timeout > 0): as TCP waits for its data to be acknowledged, wait, up to the linger time,
 * until the receiver has consumed every channel (the open one is sealed first, so that it can be given back).
 * Returns what is left of the timeout for TCP's own close. Lock held.
 */
static long tx_linger(struct sock *sk, struct fastivc_sock *ctx, long timeo)
{
	struct ivc_tunnel *t;

	while (timeo > 0 && !signal_pending(current) && !linger_done(sk, ctx)) {
		t = ctx->tx;
		if (ivc_tx_seal(&t->tx, t->ctrl) && !tx_kick(ctx, t))
			continue; /* the connection ended */
		ivc_tx_want(&t->tx, t->ctrl);
		if (linger_done(sk, ctx))
			break;
		sem_steer_virq();
		SLICED_WAIT(sk, &timeo, linger_done(sk, ctx));
	}
	return max(timeo, 0L);
}

/* close: release both tunnels (the receiver can still drain what was sent), then TCP's close. */
static void fastivc_close(struct sock *sk, long timeout)
{
	struct fastivc_sock *ctx = fastivc_ctx(sk);
	bool unread = false;

	__module_get(THIS_MODULE);
	lock_sock(sk);
	/*
	 * Unread tunnel data, whether or not this reader ever reached the switch (the sender may have switched and
	 * published after the last recvmsg): TCP resets a connection closed with unread data.
	 */
	if (ctx->rx && ctx->rx_state == FIVC_DIR_OPEN &&
	    (ctx->rx_switched || (READ_ONCE(ctx->rx->ctrl->tx_flags) & IVC_TX_SWITCHED)))
		unread = ivc_rx_ready(&ctx->rx->rx, ctx->rx->ctrl) != 0;
	/* as tcp_close(): a close that resets does not linger */
	if (timeout > 0 && !unread && !tcp_unread_bytes(sk) && ctx->tx && ctx->tx_state == FIVC_DIR_OPEN)
		timeout = tx_linger(sk, ctx, timeout);
	/* a detached tunnel's bytes go to TCP before its FIN; if TCP cannot take them now, the peer gets a reset */
	tx_early_settle(sk, ctx);
	tx_mark_fin(ctx);
	if (ctx->tx_state == FIVC_DIR_OPEN && tx_receiver_detached(ctx->tx))
		tx_detached(sk, ctx);
	if (ctx->tx_state == FIVC_DIR_RESEND && tx_resend_flush_bounded(sk, ctx))
		unread = true;
	conn_release(ctx);
	if (unread) {
		/* data the application never read: the peer sees a reset, as with TCP */
		sock_set_flag(sk, SOCK_LINGER);
		WRITE_ONCE(sk->sk_lingertime, 0);
	}
	WRITE_ONCE(sk->sk_prot, fastivc_tcp_proto(sk));
	release_sock(sk);
	base_prot->close(sk, timeout);
	module_put(THIS_MODULE);
}

/* ---- events from the SEM (lock held) ---- */

/*
 * Does a task wait on sk inside TCP's own code (a reader in sk_wait_data, a writer waiting for memory)? Ours wait
 * with fastivc_woken_wake. Socket lock held: a task in TCP's recvmsg either waits (its entry is on the queue) or will
 * come in through our operations.
 */
/*
 * Lock held: does another task want this socket's lock? One waiting for it now, or (for the SEM, not the owner) one
 * woken at the last release_sock() and off the lock's queue until it runs (autoremove): lock_handoff says so, until
 * the next release. The owner, once it runs, is past that point.
 */
static bool lock_wanted(struct fastivc_sock *ctx, bool by_owner)
{
	return waitqueue_active(&ctx->sk->sk_lock.wq) || (!by_owner && READ_ONCE(ctx->lock_handoff));
}

static bool rx_tcp_waiter(struct fastivc_sock *ctx, bool by_owner, bool lock_checked)
{
	struct sock *sk = ctx->sk;
	struct wait_queue_entry *e;
	struct socket_wq *wq;
	unsigned long flags;
	bool found = false;

	/*
	 * Not accepted yet (the SEM waited a second for it): after accept() its operations would be TCP's own, and a
	 * reader that splices would never read through us. A task waiting for the socket lock may be on its way into
	 * TCP's own code too (a splice begun before our operations were set): not early then either, unless the caller
	 * looked for such tasks already, with our operations set, while holding the lock (lock_checked, see
	 * fastivc_rx_create_busy()).
	 */
	if (!sk->sk_socket || (!lock_checked && lock_wanted(ctx, by_owner)))
		return true;
	rcu_read_lock();
	wq = rcu_dereference(sk->sk_wq);
	if (wq) {
		spin_lock_irqsave(&wq->wait.lock, flags);
		list_for_each_entry(e, &wq->wait.head, entry) {
			if (e->func == woken_wake_function) {
				found = true;
				break;
			}
		}
		spin_unlock_irqrestore(&wq->wait.lock, flags);
	}
	rcu_read_unlock();
	return found;
}

/*
 * Must a CREATE wait (lock held)? One that names a tunnel parked in our link may carry a connection's first byte
 * (its sender switched early), and a task waiting for this socket's lock right now might be on its way into TCP's own
 * code, which rx_tcp_waiter() cannot tell from a reader of ours: taken now, it would be refused. Most often that task
 * is the application's own first recv() racing the SEM: it comes through us and runs the CREATE itself once it has
 * the lock (its owner bit); otherwise the retry work runs it once nobody waits, a second at most (sem.c), and only
 * then is it decided as it is.
 *
 * This look is the decision's instant for lock waiters (*looked): the socket's operations are made ours first, so a
 * task that starts to wait for the lock after it (while the SEM maps the tunnel: its vCPU may be preempted for
 * milliseconds) comes through us, a splice too, as one that comes after the accept; fastivc_rx_create() does not look
 * again for a tunnel it then takes from the link. Looking again refused 2-3% of the early tunnels of short
 * connections in the lab: the application's own recv() arriving meanwhile. (A splice that loaded TCP's operations
 * before the swap and reaches the lock only after the look is not seen, as before.)
 */
bool fastivc_rx_create_busy(struct fastivc_sock *ctx, const struct xen_evtmgr_event *ev, bool by_owner, bool *looked)
{
	*looked = false;
	if (ctx->mode != FIVC_MODE_TUNNEL || ctx->rx || ev->peer != ctx->peer || !ctx->sk->sk_socket ||
	    !ivc_link_parked(ev->peer, &ev->tunnel))
		return false;
	swap_ops(ctx->sk); /* as the socket's first send or recv through us does */
	if (lock_wanted(ctx, by_owner))
		return true;
	*looked = true;
	return false;
}

/* A CREATE we do not take: the sender is told; a tunnel of its that we keep parked for it goes (it can end its grants) */
static void rx_reject(struct fastivc_sock *ctx, const struct xen_evtmgr_event *ev, enum fastivc_reject why)
{
	fastivc_count_reject(why);
	dem_raise(ctx, EVTMGR_EVENT_REJECT_TUNNEL, NULL);
	ivc_link_forget_rx(ev->peer, &ev->tunnel);
}

void fastivc_rx_create(struct fastivc_sock *ctx, const struct xen_evtmgr_event *ev, bool by_owner, bool lock_checked)
{
	struct ivc_tunnel *t;
	bool from_link;
	int why;

	/* not while this domain suspends: the tunnel would be mapped across the save (lifecycle.c) */
	if (ctx->mode != FIVC_MODE_TUNNEL || ctx->rx || ev->peer != ctx->peer || READ_ONCE(fastivc_suspending)) {
		rx_reject(ctx, ev, ctx->mode != FIVC_MODE_TUNNEL ? FIVC_REJ_BROKEN : ctx->rx ? FIVC_REJ_RX_BUSY :
				   ev->peer != ctx->peer ? FIVC_REJ_OTHER_PEER : FIVC_REJ_SUSPENDING);
		return;
	}
	if (!rx_may_map(ctx)) {
		pr_info_ratelimited("fastivc: domain %u offered another tunnel for one connection too soon or too often: rejected\n",
				    ev->peer);
		rx_reject(ctx, ev, FIVC_REJ_TOO_OFTEN);
		WRITE_ONCE(ctx->reason, FIVC_R_VIOLATION);
		fastivc_count_fallback(FIVC_R_VIOLATION);
		return;
	}
	t = ivc_tunnel_map_rx(ev->peer, &ctx->raddr, &ev->tunnel, &why, &from_link);
	if (!t) {
		pr_info_ratelimited("fastivc: cannot map the tunnel of domain %u (%d): rejected, staying on TCP\n",
				    ev->peer, why);
		rx_reject(ctx, ev, FIVC_REJ_MAP_FAILED); /* a link tunnel that failed its check is freed already */
		WRITE_ONCE(ctx->reason, why == -EDQUOT ? FIVC_R_BUDGET : why == -ENOSPC ? FIVC_R_PEER_QUOTA :
					FIVC_R_MAP_FAILED);
		fastivc_count_fallback(ctx->reason);
		return;
	}
	/*
	 * Taken with an atomic exchange: a sender that switched early may take an unanswered tunnel back at the same
	 * time (sock.c tx_early_ok); then its bytes come on TCP and this tunnel carries nothing.
	 */
	/* the look at lock waiters covered the time to here only if the tunnel was still parked (no map, no sleep) */
	if ((READ_ONCE(t->ctrl->tx_flags) & IVC_TX_SWITCHED) && rx_tcp_waiter(ctx, by_owner, lock_checked && from_link)) {
		ctx->rx_tunnels++; /* as one mapped: rx_may_map's limits hold for refusals too */
		ctx->rx_again_at = (jiffies + RX_AGAIN_AFTER) | 1;
		/*
		 * Switched at its first byte, but a task waits inside TCP's own code on this socket (a reader blocked in
		 * TCP's recvmsg since before we decided the socket) and would never see the tunnel: detach at its first
		 * position, so the sender sends everything on TCP.
		 */
		u32 gen, off;

		ivc_rx_position(&t->rx, &gen, &off);
		WRITE_ONCE(t->ctrl->rx_gen, gen);
		WRITE_ONCE(t->ctrl->rx_off, off);
		virt_wmb(); /* the position before the state that publishes it */
		if (cmpxchg(&t->ctrl->rx_state, IVC_RX_NONE, IVC_RX_DETACHED) == IVC_RX_NONE)
			dem_raise(ctx, EVTMGR_EVENT_RECV_CLOSE_TUNNEL, NULL);
		t->no_reuse = true;
		ivc_tunnel_release(t);
		return;
	}
	if (cmpxchg(&t->ctrl->rx_state, IVC_RX_NONE, IVC_RX_ACCEPTED) != IVC_RX_NONE) {
		ctx->rx_tunnels++;
		ctx->rx_again_at = (jiffies + RX_AGAIN_AFTER) | 1;
		t->no_reuse = true;
		ivc_tunnel_release(t);
		return;
	}
	swap_ops(ctx->sk); /* readers that never called recvmsg (splice only) must read through us from now on */
	/* a tunnel after a detached one starts its own switch (lock-free readers see ctx->rx only after this) */
	WRITE_ONCE(ctx->rx_switched, false);
	ctx->rx_channels = t->nr_channels;
	ctx->rx_channel_size = t->channel_size;
	t->fault_keep = take_fault(ctx, 1u << FAULT_NEVER_UNMAP) == FAULT_NEVER_UNMAP;
	WRITE_ONCE(ctx->rx, t);
	ctx->rx_tunnels++;
	ctx->rx_again_at = 0;
	set_dir(ctx, false, FIVC_DIR_OPEN);
	atomic64_inc(&fastivc_stats.tunnels_mapped);
	/* accepted now; IVC_RX_MAPPED waits for the first read through us (rx_publish) */
	WRITE_ONCE(ctx->rx_unpublished, true);
	/*
	 * The accept: RECV_GET_DATA with nothing read yet wakes the sender; IVC_RX_ACCEPTED stops its create timeout. A
	 * sender that switched at its first byte waits for nothing, unless it says so (tx_want, before its FIN:
	 * tx_early_settle): our exchange above and its increment are both full barriers, so one of us sees the other.
	 */
	if (!(READ_ONCE(t->ctrl->tx_flags) & IVC_TX_SWITCHED) || READ_ONCE(t->ctrl->tx_want))
		dem_raise(ctx, EVTMGR_EVENT_RECV_GET_DATA, NULL);
	fastivc_wake(ctx->sk, EPOLLIN | EPOLLRDNORM); /* a reader of ours publishes the tunnel and re-arms rx_want */
}

/*
 * Lock-free (softirq, under RCU): does the receiving tunnel hold only a channel read to its end and then sealed, with
 * nothing after it? Its release is then up to the owner (fastivc_rx_event), as no read will come for it.
 */
bool fastivc_rx_needs_release(struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t = READ_ONCE(ctx->rx);

	return t && READ_ONCE(ctx->rx_state) == FIVC_DIR_OPEN && ivc_rx_news(&t->rx, t->ctrl) &&
	       !ivc_rx_poll_news(&t->rx, t->ctrl);
}

void fastivc_rx_event(struct fastivc_sock *ctx, u32 events)
{
	/* as for RECV_CLOSE: only if this tunnel's sender set IVC_TX_CLOSED (not a late event of an older connection) */
	if ((events & EVTMGR_EVENT_SEND_CLOSE_TUNNEL) && ctx->rx) {
		u32 f = READ_ONCE(ctx->rx->ctrl->tx_flags);

		if (f & IVC_TX_DETACH) /* open or reverted */
			rx_detach(ctx); /* the sender's domain is about to suspend */
		/*
		 * A tunnel the sender closed without ever switching to it carries nothing: unmap it now. A sender that
		 * gave up waiting for us (its create timeout) may offer another.
		 */
		else if ((f & IVC_TX_CLOSED) && !(f & IVC_TX_SWITCHED) && !ctx->rx_switched) {
			rx_release(ctx, FIVC_DIR_CLOSED, true);
			ctx->rx_again_at = (jiffies + RX_AGAIN_AFTER) | 1;
		}
	}
	/*
	 * A seal of the channel the reader already read to its end (the sender's lingering close or MSG_OOB, which wait
	 * for it back) carries no bytes, so poll does not report it (ivc_rx_poll_news) and a poller would never come
	 * to give it back: the owner's look here does (the SEM routes such a SEND_DATA here, fastivc_rx_needs_release),
	 * and tells the sender.
	 */
	if (events & EVTMGR_EVENT_SEND_DATA)
		clear_bit(0, &ctx->rx_release_queued); /* a poller may queue it again once this look is done */
	if ((events & EVTMGR_EVENT_SEND_DATA) && ctx->rx && ctx->rx_state == FIVC_DIR_OPEN &&
	    rx_phase(ctx->sk, ctx) == PH_TUNNEL && ivc_rx_ready(&ctx->rx->rx, ctx->rx->ctrl) >= 0 &&
	    ivc_rx_take_freed(&ctx->rx->rx))
		rx_kick(ctx, ctx->rx);
	fastivc_wake(ctx->sk, EPOLLIN | EPOLLRDNORM);
}

void fastivc_tx_event(struct fastivc_sock *ctx, u32 events)
{
	if (events & EVTMGR_EVENT_REJECT_TUNNEL) {
		if (ctx->tx_state == FIVC_DIR_CREATING) {
			tx_release(ctx, FIVC_DIR_TCP, false);
			WRITE_ONCE(ctx->reason, FIVC_R_PEER_REJECTED);
			fastivc_count_fallback(FIVC_R_PEER_REJECTED);
			tx_create_failed(ctx, false); /* a peer suspending rejects for a while: a moving direction retries */
		} else if (ctx->tx_state == FIVC_DIR_OPEN && ctx->tx_early) {
			/* an early tunnel it did not take: its bytes go again on TCP (if it took it after all, stale) */
			tx_early_take_back(ctx->sk, ctx, FIVC_R_PEER_REJECTED);
		} else if (ctx->tx_state == FIVC_DIR_OPEN) {
			fastivc_break(ctx, -IVC_E_LAYOUT); /* rejecting a tunnel it accepted */
		}
	}
	/*
	 * Only if this tunnel's receiver really closed it (it writes IVC_RX_CLOSED before raising): the DEM names
	 * connections by 4-tuple, so a late event of an earlier connection with the same ports must not end this one.
	 */
	/* the receiver's domain is about to suspend; while ours is, lifecycle.c acts on the answer it asked for */
	if ((events & EVTMGR_EVENT_RECV_CLOSE_TUNNEL) && tx_receiver_detached(ctx->tx) && !ctx->tx_detach_asked)
		tx_detached(ctx->sk, ctx);
	if ((events & EVTMGR_EVENT_RECV_CLOSE_TUNNEL) && ctx->tx && rx_done(READ_ONCE(ctx->tx->ctrl->rx_state))) {
		WRITE_ONCE(ctx->tx_peer_closed, true);
		/*
		 * Closed before it was ever used: give the pages back. Not a refusal: the receiver took it (or parked it)
		 * and its end of the connection is done (a tunnel created after an early one was refused, for one).
		 */
		if (ctx->tx_state == FIVC_DIR_CREATING)
			tx_release(ctx, FIVC_DIR_TCP, false);
	}
	fastivc_wake(ctx->sk, EPOLLOUT | EPOLLWRNORM);
}

/*
 * TCP_USER_TIMEOUT (lock held, from the tick): TCP aborts a connection whose data stays unacknowledged, or whose
 * peer keeps a zero window, for longer than that. A tunnel's equivalent is a sender that found every channel held
 * (tx_tunnel() starts the clock) with no channel taken back since (tx.seq unchanged). The connection is aborted with
 * ETIMEDOUT, as TCP's tcp_write_err(), and the peer gets a reset. Checked once a second: up to a second late.
 */
static void tx_user_timeout(struct fastivc_sock *ctx)
{
	u32 ut = READ_ONCE(inet_csk(ctx->sk)->icsk_user_timeout);
	char conn[FIVC_CONN_STR];
	struct ivc_tunnel *t = ctx->tx;

	if (!ctx->tx_stall_since)
		return;
	if (ivc_tx_writable(&t->tx, t->ctrl) != 0 || ctx->tx_stall_seq != t->tx.seq) {
		WRITE_ONCE(ctx->tx_stall_since, 0); /* room again: the receiver is reading */
		return;
	}
	if (ut && time_after_eq(jiffies, ctx->tx_stall_since + msecs_to_jiffies(ut))) {
		pr_info_ratelimited("fastivc: %s: no channel read for %u ms (TCP_USER_TIMEOUT): connection timed out\n",
				    fastivc_conn_str(conn, ctx), ut);
		/*
		 * ETIMEDOUT, as tcp_write_err(); and a reset for the peer: over TCP it would learn of the end from the
		 * reset its next window update draws, but a tunnel's reader sends nothing on TCP.
		 */
		abort_conn(ctx, FIVC_R_USER_TIMEOUT, ETIMEDOUT, true);
	}
}

/*
 * Once a second, from the SEM (lock held): a sender still waiting for its receiver gives up after a while; the
 * detach requests and answers whose events were lost; a detached tunnel's bytes that TCP could not take yet.
 */
void fastivc_sock_tick(struct fastivc_sock *ctx)
{
	struct sock *sk = ctx->sk;

	if (ctx->mode != FIVC_MODE_TUNNEL)
		return;
	if (ctx->rx && (READ_ONCE(ctx->rx->ctrl->tx_flags) & IVC_TX_DETACH))
		rx_detach(ctx);
	if (ctx->mode != FIVC_MODE_TUNNEL) /* the detach ended the connection */
		return;
	if (ctx->tx_state != FIVC_DIR_RESEND && !ctx->tx_detach_asked && tx_receiver_detached(ctx->tx))
		tx_detached(sk, ctx);
	if (ctx->tx_state == FIVC_DIR_RESEND)
		tx_resend_push(sk, ctx);
	if (ctx->tx_state == FIVC_DIR_CREATING && tx_create_timed_out(ctx, READ_ONCE(ctx->tx->ctrl->rx_state)))
		tx_timed_out(ctx);
	if (ctx->tx_early && !tx_early_settled(ctx) && time_after(jiffies, ctx->tx_created + FASTIVC_CREATE_TIMEOUT))
		tx_early_take_back(sk, ctx, FIVC_R_PEER_TIMEOUT);
	if (ctx->mode == FIVC_MODE_TUNNEL && ctx->tx_state == FIVC_DIR_OPEN && !ctx->tx_early)
		tx_user_timeout(ctx); /* an unanswered early tunnel is taken back first (above), not aborted */
}

/*
 * Lock-free, under fastivc_socks_lock (bottom halves off: an RCU reader, so tunnels stay): has the tick work for this
 * socket? A sender waiting for its receiver, a stalled sender with TCP_USER_TIMEOUT, a detach not yet acted on, or
 * a detached tunnel's bytes still to queue.
 */
bool fastivc_sock_needs_tick(const struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t;

	if (READ_ONCE(ctx->mode) != FIVC_MODE_TUNNEL)
		return false;
	if (READ_ONCE(ctx->tx_early))
		return true; /* an early switch not settled yet */
	switch (READ_ONCE(ctx->tx_state)) {
	case FIVC_DIR_RESEND:
		return true;
	case FIVC_DIR_CREATING:
		if (!READ_ONCE(ctx->tx_accepted))
			return true;
		break;
	default:
		if (READ_ONCE(ctx->tx_stall_since) && READ_ONCE(inet_csk(ctx->sk)->icsk_user_timeout))
			return true;
	}
	t = READ_ONCE(ctx->tx);
	if (t && !READ_ONCE(ctx->tx_detach_asked) && READ_ONCE(t->ctrl->rx_state) == IVC_RX_DETACHED)
		return true;
	t = READ_ONCE(ctx->rx);
	return t && (READ_ONCE(t->ctrl->tx_flags) & IVC_TX_DETACH);
}

/* ---- save, restore, migration (lifecycle.c; lock held) ---- */

/*
 * Before this domain suspends: the receiving tunnel detaches at once; the sending tunnel asks its receiver to
 * detach (IVC_TX_DETACH, EVENT_SEND_CLOSE_TUNNEL), and lifecycle.c waits for the answer, and for our grants to end,
 * before fastivc_sock_suspend_finish() acts on it. A tunnel whose receiver answered already (it detached or closed
 * on its own, or we are resending) is waited for all the same: it may still be unmapping.
 */
void fastivc_sock_suspend(struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t;
	u32 st;

	if (ctx->mode != FIVC_MODE_TUNNEL)
		return;
	rx_detach(ctx);
	t = ctx->tx;
	if (ctx->mode != FIVC_MODE_TUNNEL || !t || ctx->tx_detach_asked)
		return;
	WRITE_ONCE(ctx->tx_detach_asked, jiffies | 1);
	/* an early tunnel its receiver has not taken yet: back to TCP now, from our pages */
	if (tx_early_take_back(ctx->sk, ctx, FIVC_R_SUSPEND))
		return;
	st = READ_ONCE(t->ctrl->rx_state);
	if (st == IVC_RX_PARKED || st == IVC_RX_PARKING) { /* kept for a next connection: it must unmap it now */
		ivc_tunnel_ask_back(t);
		return;
	}
	if (ctx->tx_state == FIVC_DIR_RESEND || st == IVC_RX_DETACHED || st == IVC_RX_CLOSED)
		return;
	WRITE_ONCE(t->ctrl->tx_flags, READ_ONCE(t->ctrl->tx_flags) | IVC_TX_DETACH);
	/* a lost event is made up for by the peer's tick, which looks for the flag */
	dem_raise(ctx, EVTMGR_EVENT_SEND_CLOSE_TUNNEL, NULL);
}

/* Has the receiver answered our request to detach, and let go of our pages (their grants ended)? Lock held. */
bool fastivc_sock_detach_answered(struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t = ctx->tx;
	u32 st;

	if (!ctx->tx_detach_asked || !t) /* not asked, or released meanwhile (a reject, an abort) */
		return true;
	st = READ_ONCE(t->ctrl->rx_state);
	/* a CREATE the receiver has not looked at: once our grants are ended it can map nothing */
	if (ctx->tx_state == FIVC_DIR_CREATING && st == IVC_RX_NONE)
		return ivc_tunnel_end_grants(t);
	/* parked by its receiver (perhaps since we asked it to detach): it gives it back for IVC_TX_EVICT (link.c) */
	if (st == IVC_RX_PARKED || st == IVC_RX_PARKING) {
		ivc_tunnel_ask_back(t);
		return false;
	}
	return (st == IVC_RX_DETACHED || st == IVC_RX_CLOSED) && ivc_tunnel_end_grants(t);
}

/*
 * After the wait (lock held): a receiver that detached gets what it did not consume on TCP (FIVC_DIR_RESEND); one
 * that closed its end meanwhile, as before; a tunnel still being created goes back to TCP, to be created again after
 * the resume. One open that did not answer in time loses the connection (reset, reason suspend): its unread bytes
 * could not be recovered, and it would map our pages across the save. Returns true for such a reset.
 */
bool fastivc_sock_suspend_finish(struct fastivc_sock *ctx)
{
	struct ivc_tunnel *t = ctx->tx;
	char conn[FIVC_CONN_STR];
	u32 st;

	if (!ctx->tx_detach_asked)
		return false;
	WRITE_ONCE(ctx->tx_detach_asked, 0);
	if (ctx->mode != FIVC_MODE_TUNNEL || !t)
		return false;
	if (ctx->tx_state == FIVC_DIR_RESEND) {
		tx_resend_push(ctx->sk, ctx);
		return false;
	}
	st = READ_ONCE(t->ctrl->rx_state);
	if (st == IVC_RX_DETACHED) {
		tx_detached(ctx->sk, ctx);
	} else if (rx_done(st)) {
		WRITE_ONCE(ctx->tx_peer_closed, true); /* it closed its end: sends fail with EPIPE, as before */
		tx_release(ctx, FIVC_DIR_CLOSED, false);
	} else if (ctx->tx_state == FIVC_DIR_CREATING) {
		tx_release(ctx, FIVC_DIR_TCP, true); /* carried nothing yet */
		tx_start_moving(ctx);
	} else {
		pr_warn_ratelimited("fastivc: %s: domain %u did not leave our tunnel before the suspend: connection reset\n",
				    fastivc_conn_str(conn, ctx), ctx->peer);
		abort_conn(ctx, FIVC_R_SUSPEND, ECONNRESET, true);
		return true;
	}
	return false;
}

/*
 * A CREATE_TUNNEL from another domain than the connection's peer (lock held): the peer was restored or migrated and
 * came back as that domain (the DEM checked that the raiser holds the peer's address). Taken only when the DEM says
 * so now and nothing of the old peer is mapped here or open towards it. true: ctx->peer is the new one.
 */
bool fastivc_sock_peer_moved(struct fastivc_sock *ctx, domid_t peer)
{
	domid_t d;

	if (ctx->mode != FIVC_MODE_TUNNEL || ctx->rx || ctx->tx_state == FIVC_DIR_OPEN ||
	    ctx->tx_state == FIVC_DIR_CREATING)
		return false;
	if (dem_lookup(&ctx->raddr, &d) || d != peer)
		return false;
	WRITE_ONCE(ctx->peer, peer);
	return true;
}

/*
 * From the SEM's tick (lock held): data events whose raise failed are raised again, so a waiter on the other side
 * (a poller, which has no wait slices) is woken within a tick of the DEM accepting raises again.
 */
void fastivc_sock_retry_kicks(struct fastivc_sock *ctx)
{
	u32 ev = ctx->kick_pending;

	WRITE_ONCE(ctx->kick_pending, 0);
	if (!ev || ctx->mode != FIVC_MODE_TUNNEL)
		return;
	atomic64_inc(&fastivc_stats.kicks_retried);
	if ((ev & EVTMGR_EVENT_SEND_DATA) && ctx->tx && ctx->tx_state == FIVC_DIR_OPEN)
		tx_kick(ctx, ctx->tx);
	if ((ev & EVTMGR_EVENT_RECV_GET_DATA) && ctx->rx && ctx->rx_state == FIVC_DIR_OPEN)
		rx_kick(ctx, ctx->rx);
}

/*
 * From the SEM's tick, lock-free (under fastivc_socks_lock, which keeps the socket): a poller (poll, epoll, select,
 * or an O_ASYNC owner) that last found a tunnelled socket not readable (not writable) is woken once it is, so a
 * waiter whose event was lost anywhere (a skipped VIRQ, a raise that failed on the other side) waits at most a tick.
 * Blocking readers and writers have their wait slices. Counted in tick_wakes.
 */
void fastivc_sock_wake_check(struct fastivc_sock *ctx)
{
	struct sock *sk = ctx->sk;
	__poll_t mask = 0;
	struct ivc_tunnel *t;

	if (READ_ONCE(ctx->mode) != FIVC_MODE_TUNNEL || !sk_has_waiters(sk))
		return;
	rcu_read_lock();
	t = READ_ONCE(ctx->rx);
	if (READ_ONCE(ctx->rx_poll_waiting) && t && READ_ONCE(ctx->rx_state) == FIVC_DIR_OPEN &&
	    (READ_ONCE(sk->sk_rcvlowat) > 1 ? rx_queued(sk, ctx) >= READ_ONCE(sk->sk_rcvlowat) :
					      rx_at_switch(sk, ctx, t) && ivc_rx_poll_news(&t->rx, t->ctrl))) {
		WRITE_ONCE(ctx->rx_poll_waiting, false);
		mask |= EPOLLIN | EPOLLRDNORM;
	}
	t = READ_ONCE(ctx->tx);
	if (READ_ONCE(ctx->tx_poll_waiting) && t && READ_ONCE(ctx->tx_state) == FIVC_DIR_OPEN &&
	    ivc_tx_writable(&t->tx, t->ctrl)) {
		WRITE_ONCE(ctx->tx_poll_waiting, false);
		mask |= EPOLLOUT | EPOLLWRNORM;
	}
	rcu_read_unlock();
	if (mask) {
		atomic64_inc(&fastivc_stats.tick_wakes);
		fastivc_wake(sk, mask);
	}
}

/*
 * release_sock() (socket spinlock held, BH off): TCP's deferred work, then ours. Events the SEM left to this socket's
 * owner that the owner did not run before letting go (it went to sleep, or its call did not pass the point that runs
 * them) go to the retry work now: otherwise they waited for its next interval (a new tunnel, 20 ms later). Not when a
 * task waits for the lock: it is woken now and owns the socket next (it runs them if it is ours, or kicks at its own
 * release), and the SEM must not take the lock before it (lock_handoff, fastivc_rx_create_busy). Nor when nothing
 * waits in the retry list at all (a bit left from the socket's attach).
 */
static void fastivc_release_cb(struct sock *sk)
{
	struct fastivc_sock *ctx = fastivc_ctx(sk);
	bool waiters;

	base_prot->release_cb(sk);
	if (!ctx)
		return;
	waiters = waitqueue_active(&sk->sk_lock.wq);
	if (READ_ONCE(ctx->lock_handoff) != waiters) /* every release passes here: no store when nothing changed */
		WRITE_ONCE(ctx->lock_handoff, waiters);
	if (!waiters && test_bit(0, &ctx->owner_events) && fastivc_sem_retries_pending())
		fastivc_sem_kick();
}

static void override(struct proto *p)
{
	p->release_cb = fastivc_release_cb;
	p->sendmsg = fastivc_sendmsg;
	p->recvmsg = fastivc_recvmsg;
	p->sendpage = fastivc_sendpage;
	p->close = fastivc_close;
	p->ioctl = fastivc_ioctl;
	p->getsockopt = fastivc_getsockopt;
	p->disconnect = fastivc_disconnect;
	p->shutdown = fastivc_shutdown;
	p->sock_is_readable = fastivc_sock_is_readable;
	p->psock_update_sk_prot = NULL; /* sockmap refuses a tunnelled socket (EOPNOTSUPP): its data is not in TCP */
}

/*
 * base/base6: tcp_prot/tcpv6_prot as they were before the monitor's hooks (TCP's own functions). TCP's send,
 * receive, sendpage, ioctl and close are the same functions for both families, so base_prot serves both.
 */
void fastivc_sock_build(const struct proto *base, const struct proto *base6, const struct proto_ops *ops)
{
	base_prot = base;
	base_ops = ops;
	fastivc_tunnel_prot = *base;
	override(&fastivc_tunnel_prot);
	fastivc_tunnel6_prot = *base6;
	override(&fastivc_tunnel6_prot);
	tunnel_ops_init(&fastivc_tunnel_ops, ops);
}
