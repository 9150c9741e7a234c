/* SPDX-License-Identifier: MIT */
/*
 * evtmgr_abi.h: the guest's view of the DEM interface, xen-patches/0001 (xen/include/public/evtmgr.h), in kernel
 * types. Linux carries its own copy of Xen's public headers without ours, so the module declares what it uses here;
 * the sizes are asserted below (the same sizes as the public header's, which lab/dem-probe uses).
 */
#ifndef FASTIVC_EVTMGR_ABI_H
#define FASTIVC_EVTMGR_ABI_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/build_bug.h>
#define EVTMGR_ASSERT(c) static_assert(c)
#else
#include <stdint.h>
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
#define EVTMGR_ASSERT(c) _Static_assert(c, #c)
#endif

#define EVTMGR_HYPERCALL            43
#define EVTMGR_VIRQ                 14
#define EVTMGR_ABI_VERSION          1

#define EVTMGR_AF_INET              4
#define EVTMGR_AF_INET6             6
#define EVTMGR_DOMID_NONE           0x7ff4 /* DOMID_INVALID */

#define EVTMGR_EVENT_CREATE_TUNNEL      (1U << 0)
#define EVTMGR_EVENT_SEND_CLOSE_TUNNEL  (1U << 1)
#define EVTMGR_EVENT_REJECT_TUNNEL      (1U << 2)
#define EVTMGR_EVENT_RECV_CLOSE_TUNNEL  (1U << 3)
#define EVTMGR_EVENT_SEND_DATA          (1U << 4)
#define EVTMGR_EVENT_RECV_GET_DATA      (1U << 5)
/* events that concern the receiving end's tunnel of the connection (S->R) and its sending end's (R->S) */
#define EVTMGR_EVENTS_TO_RECEIVER (EVTMGR_EVENT_CREATE_TUNNEL | EVTMGR_EVENT_SEND_CLOSE_TUNNEL | EVTMGR_EVENT_SEND_DATA)
#define EVTMGR_EVENTS_TO_SENDER   (EVTMGR_EVENT_REJECT_TUNNEL | EVTMGR_EVENT_RECV_CLOSE_TUNNEL | EVTMGR_EVENT_RECV_GET_DATA)

#define EVTMGR_MAX_GREFS            8

#define EVTMGR_OP_info              0
#define EVTMGR_OP_ip_lookup         3
#define EVTMGR_OP_raise             4
#define EVTMGR_OP_get_events        5
#define EVTMGR_OP_release           6

struct xen_evtmgr_addr {
	u8 family;
	u8 pad[3];
	u8 addr[16];
};

struct xen_evtmgr_conn {
	struct xen_evtmgr_addr src;
	struct xen_evtmgr_addr dst;
	u16 src_port;
	u16 dst_port;
	u32 pad;
};

struct xen_evtmgr_tunnel {
	u32 nr_channels;
	u32 channel_size;
	u32 nr_grefs;
	u32 flags;
	u32 gref[EVTMGR_MAX_GREFS];
};

struct xen_evtmgr_info {
	u32 abi_version;
	u32 virq;
	u32 max_ip_per_domain;
	u32 max_records_per_domain;
	u32 max_pending_per_domain;
	u32 max_batch;
	u16 domid;
	u16 pad;
	u32 pad2;
};

struct xen_evtmgr_ip_entry {
	struct xen_evtmgr_addr addr;
	u16 domid;
	u16 pad;
	u32 pad2;
};

struct xen_evtmgr_raise {
	struct xen_evtmgr_conn conn;
	u32 events;
	u32 pad;
	struct xen_evtmgr_tunnel tunnel;
};

struct xen_evtmgr_event {
	struct xen_evtmgr_conn conn;
	u32 events;
	u16 peer;
	u16 pad;
	struct xen_evtmgr_tunnel tunnel;
};

struct xen_evtmgr_get_events {
	u32 nr;
	u32 more;
	struct xen_evtmgr_event ev[];
};

EVTMGR_ASSERT(sizeof(struct xen_evtmgr_addr) == 20);
EVTMGR_ASSERT(sizeof(struct xen_evtmgr_conn) == 48);
EVTMGR_ASSERT(sizeof(struct xen_evtmgr_tunnel) == 48);
EVTMGR_ASSERT(sizeof(struct xen_evtmgr_info) == 32);
EVTMGR_ASSERT(sizeof(struct xen_evtmgr_ip_entry) == 28);
EVTMGR_ASSERT(sizeof(struct xen_evtmgr_raise) == 104);
EVTMGR_ASSERT(sizeof(struct xen_evtmgr_event) == 104);
EVTMGR_ASSERT(sizeof(struct xen_evtmgr_get_events) == 8);

#endif /* FASTIVC_EVTMGR_ABI_H */
