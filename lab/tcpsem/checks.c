// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem: the check table.  The client runs the listed checks in this order;
 * the server looks a CHECK line's name up here (server-only roles included).
 * Each check has its own pattern seed.  README.md says what each asserts.
 */
#include "tcpsem.h"

#include <string.h>

#define CHECK(n, s) { #n, s, n##_client, n##_server }

const struct check checks[] = {
	CHECK(bulk_both_ways, 1),
	CHECK(many_small_writes, 2),
	CHECK(partial_reads, 3),
	CHECK(nonblocking, 4),
	CHECK(msg_peek, 5),
	CHECK(msg_waitall, 6),
	CHECK(poll_in, 7),
	CHECK(epoll_lt_et, 8),
	CHECK(shutdown_wr_eof, 9),
	CHECK(close_unread, 10),
	CHECK(so_rcvtimeo, 11),
	CHECK(sendfile, 12),
	CHECK(readv_writev, 13),
	CHECK(rr_ping_pong, 14),
	CHECK(msg_oob, 15),
	CHECK(sendfile_first, 16),
	CHECK(splice_read, 17),
	CHECK(threads_two_senders, 18),
	CHECK(threads_recv_epoll, 19),
	CHECK(threads_close_in_recv, 20),
	CHECK(recv_zero, 21),
	CHECK(o_async_sigio, 22),
	CHECK(peek_waitall, 23),
	CHECK(msg_trunc, 24),
	CHECK(rcvlowat_poll, 25),
	CHECK(outq_info, 26),
	CHECK(msg_zerocopy, 27),
	CHECK(threads_switch_senders, 28),
	CHECK(user_timeout, 29),
	CHECK(so_linger, 30),
	CHECK(close_unread_switched, 31),
	CHECK(disconnect_reconnect, 32),
	CHECK(recv_waitall_first, 33),
	CHECK(held_sender, 34),
	CHECK(ulp_slot, 35),
	CHECK(linger_poll_reader, 36),
	/* server-only: the data connections of the checks with two connections (token.c) */
	{ "close_unread.data", 10, NULL, close_unread_data_server },
	{ "threads_close_in_recv.data", 20, NULL, threads_close_in_recv_data_server },
	{ "so_linger.data", 30, NULL, so_linger_data_server },
	{ "close_unread_switched.data", 31, NULL, close_unread_switched_data_server },
	{ "disconnect_reconnect.second", 32, NULL, disconnect_reconnect_second_server },
};

const size_t n_checks = sizeof(checks) / sizeof(checks[0]);

const struct check *check_find(const char *name)
{
	size_t i;

	for (i = 0; i < n_checks; i++)
		if (!strcmp(checks[i].name, name))
			return &checks[i];
	return NULL;
}
