// SPDX-License-Identifier: GPL-2.0-only
/*
 * sem.c: the Socket Event Manager (thesis 3.4.6.2). VIRQ_EVTMGR says "you have events"; one work item fetches them
 * all (get_events returns every pending record, max_batch at a time, `more` says whether to call again), finds the
 * socket of each by its 4-tuple in the TCP established hash (the thesis' tcp_v4_lookup) and hands the events to it:
 *   S->R events (CREATE_TUNNEL, SEND_CLOSE_TUNNEL, SEND_DATA) concern the socket's receiving tunnel,
 *   R->S events (REJECT_TUNNEL, RECV_CLOSE_TUNNEL, RECV_GET_DATA) its sending tunnel.
 * Data events only wake the socket's waiters; the channel headers carry the state.
 *
 * As the DEM's header requires, the SEM fetches once right after binding the VIRQ and then once a second from a
 * timer (Xen may skip a signal), which also drives the tunnels' timeouts and the statistics mirror.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/interrupt.h>
#include <linux/timer.h>
#include <net/tcp.h>
#include <net/inet_hashtables.h>
#include <xen/events.h>
#include "fastivc.h"

/* Events fetched per get_events call: the DEM's max_batch (64), ~6.5 KiB of buffer. */
#define SEM_BATCH 64

static int sem_irq = -1;
static struct xen_evtmgr_get_events *sem_buf;
static struct work_struct sem_work, tick_work;
static struct timer_list sem_timer;
static bool sem_stopping;

/* A CREATE_TUNNEL for a connection we have no socket for: say no, so the sender stays on TCP without waiting. */
static void reject_conn(__be32 me, u16 lport, __be32 peer, u16 rport)
{
	dem_raise_conn(me, lport, peer, rport, EVTMGR_EVENT_REJECT_TUNNEL);
}

static void sem_dispatch(const struct xen_evtmgr_event *ev)
{
	u32 events = ev->events;
	struct fastivc_sock *ctx;
	__be32 me, peer;
	struct sock *sk;

	atomic64_add(hweight32(events), &fastivc_stats.events_received);
	if (ev->conn.src.family != EVTMGR_AF_INET || ev->conn.dst.family != EVTMGR_AF_INET)
		return;
	memcpy(&me, ev->conn.src.addr, 4);
	memcpy(&peer, ev->conn.dst.addr, 4);
	sk = __inet_lookup_established(&init_net, &tcp_hashinfo, peer, htons(ev->conn.dst_port), me,
				       ev->conn.src_port, 0, 0);
	if (sk && sk->sk_state == TCP_TIME_WAIT) {
		inet_twsk_put(inet_twsk(sk));
		sk = NULL;
	} else if (sk && sk->sk_state == TCP_NEW_SYN_RECV) {
		reqsk_put(inet_reqsk(sk));
		sk = NULL;
	}
	if (!sk) {
		if (events & EVTMGR_EVENT_CREATE_TUNNEL)
			reject_conn(me, ev->conn.src_port, peer, ev->conn.dst_port);
		return;
	}
	lock_sock(sk);
	ctx = (events & EVTMGR_EVENT_CREATE_TUNNEL) ? fastivc_attach(sk, true) : fastivc_ctx(sk);
	if (!ctx || ctx->peer != ev->peer) {
		/* not ours (another ULP, not established) or the event comes from another domain than the peer's */
		if (events & EVTMGR_EVENT_CREATE_TUNNEL)
			reject_conn(me, ev->conn.src_port, peer, ev->conn.dst_port);
		goto out;
	}
	WRITE_ONCE(ctx->events_received, ctx->events_received + hweight32(events));
	if (events & EVTMGR_EVENT_CREATE_TUNNEL)
		fastivc_rx_create(ctx, ev);
	if (events & (EVTMGR_EVENT_SEND_CLOSE_TUNNEL | EVTMGR_EVENT_SEND_DATA))
		fastivc_rx_event(ctx, events);
	if (events & EVTMGR_EVENTS_TO_SENDER)
		fastivc_tx_event(ctx, events);
out:
	release_sock(sk);
	sock_put(sk);
}

static void sem_fetch(struct work_struct *w)
{
	u32 i, rounds = 0;
	int rc;

	do {
		rc = dem_get_events(sem_buf, SEM_BATCH);
		if (rc) {
			pr_warn_ratelimited("fastivc: get_events failed (%d)\n", rc);
			return;
		}
		for (i = 0; i < sem_buf->nr && i < SEM_BATCH; i++)
			sem_dispatch(&sem_buf->ev[i]);
		/* bounded: the DEM holds at most max_pending_per_domain records; let others run meanwhile */
		if (++rounds % 16 == 0)
			cond_resched();
	} while (sem_buf->more);
}

static irqreturn_t sem_virq(int irq, void *dev)
{
	atomic64_inc(&fastivc_stats.virqs);
	queue_work(fastivc_wq, &sem_work);
	return IRQ_HANDLED;
}

/* Once a second: the safety-net fetch, tunnel timeouts, the statistics mirror. */
static void sem_tick(struct work_struct *w)
{
	struct fastivc_sock *ctx;
	struct sock *todo[32];
	int n = 0, i;

	sem_fetch(NULL);
	spin_lock_bh(&fastivc_socks_lock);
	list_for_each_entry(ctx, &fastivc_socks, node) {
		if (ctx->tx_state == FIVC_DIR_CREATING && n < ARRAY_SIZE(todo) && refcount_inc_not_zero(&ctx->sk->sk_refcnt))
			todo[n++] = ctx->sk;
	}
	spin_unlock_bh(&fastivc_socks_lock);
	for (i = 0; i < n; i++) {
		lock_sock(todo[i]);
		ctx = fastivc_ctx(todo[i]);
		if (ctx)
			fastivc_sock_tick(ctx);
		release_sock(todo[i]);
		sock_put(todo[i]);
	}
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
	if (!sem_buf)
		return -ENOMEM;
	INIT_WORK(&sem_work, sem_fetch);
	INIT_WORK(&tick_work, sem_tick);
	sem_irq = bind_virq_to_irqhandler(EVTMGR_VIRQ, 0, sem_virq, 0, "fastivc-dem", NULL);
	if (sem_irq < 0) {
		kfree(sem_buf);
		return sem_irq;
	}
	/* events raised before we bound the VIRQ signalled nobody: fetch them now */
	queue_work(fastivc_wq, &sem_work);
	timer_setup(&sem_timer, sem_timer_fn, 0);
	mod_timer(&sem_timer, jiffies + HZ);
	return 0;
}

void fastivc_sem_exit(void)
{
	WRITE_ONCE(sem_stopping, true);
	del_timer_sync(&sem_timer);
	if (sem_irq >= 0)
		unbind_from_irqhandler(sem_irq, NULL);
	cancel_work_sync(&tick_work);
	cancel_work_sync(&sem_work);
	kfree(sem_buf);
}
