// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem: checks that use two connections (close_unread,
 * threads_close_in_recv).  The control connection ("CHECK <name>") gets a
 * token and, at the end, the verdict; the data connection ("CHECK
 * <name>.data", then the token line) is the one the check closes.  The
 * server's child for the data connection reports what it saw to the control
 * connection's child in one datagram, "OK <detail>" or "FAIL <detail>", on the
 * abstract Unix socket "@tcpsem-<name>-<token>".
 */
#include "tcpsem.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static socklen_t token_addr(struct sockaddr_un *a, const char *check, const char *token)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "tcpsem-%s-%s", check, token);
	if (n < 0 || (size_t)n >= sizeof(a->sun_path) - 1)
		n = (int)sizeof(a->sun_path) - 2;
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int token_connect(int ctl, const struct opts *o, const char *check)
{
	char line[LINE_MAX_LEN], data_name[64], tok[LINE_MAX_LEN];
	int n = recv_line(ctl, line, sizeof(line)), data;

	if (n < 0 || strncmp(line, "TOKEN ", 6))
		return n == -1 ? fail_sys("reading the token") : fail("no token line from the server");
	snprintf(data_name, sizeof(data_name), "%s.data", check);
	data = connect_check(o, data_name);
	if (data < 0)
		return -1;
	n = snprintf(tok, sizeof(tok), "%s\n", line + 6);
	if (send_exact(data, tok, (size_t)n, "token") < 0) {
		close(data);
		return -1;
	}
	return data;
}

int token_verdict_server(int fd, const char *check, int ms)
{
	struct sockaddr_un a;
	char token[24], line[48], msg[LINE_MAX_LEN];
	ssize_t r;
	int u, n, rc;

	snprintf(token, sizeof(token), "%ld", (long)getpid());
	u = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u < 0 || bind(u, (struct sockaddr *)&a, token_addr(&a, check, token)) < 0) {
		fail_sys("abstract Unix socket for the data connection's report");
		if (u >= 0)
			close(u);
		return send_verdict(fd, -1);
	}
	n = snprintf(line, sizeof(line), "TOKEN %s\n", token);
	if (send_exact(fd, line, (size_t)n, "token") < 0) {
		close(u);
		return -1;
	}
	if (wait_for(u, POLLIN, ms) <= 0) {
		close(u);
		return send_verdict(fd, fail("no report from the data connection within %d s", ms / 1000));
	}
	r = recv(u, msg, sizeof(msg) - 1, 0);
	close(u);
	if (r < 0)
		return send_verdict(fd, fail_sys("recv the data connection's report"));
	msg[r] = 0;
	rc = strncmp(msg, "OK ", 3) ? -1 : 0;
	note("%s", msg + (rc ? 5 : 3));
	return send_verdict(fd, rc); /* then close: the client expects EOF */
}

int token_read(int fd, char *token, size_t size)
{
	int n = recv_line(fd, token, size);

	if (n <= 0 || strspn(token, "0123456789") != (size_t)n)
		return fail("bad token line");
	return 0;
}

int token_report(const char *check, const char *token, int rc)
{
	struct sockaddr_un a;
	char msg[LINE_MAX_LEN + 8];
	int n = snprintf(msg, sizeof(msg), "%s %s", rc ? "FAIL" : "OK", detail), u;

	u = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u < 0 || sendto(u, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1, 0,
			    (struct sockaddr *)&a, token_addr(&a, check, token)) < 0) {
		int e = errno;
		size_t k = strlen(detail);

		snprintf(detail + k, sizeof(detail) - k, "; reporting to the control connection: %s",
			 errname(e));
		rc = -1;
	}
	if (u >= 0)
		close(u);
	return rc;
}
