// SPDX-License-Identifier: GPL-2.0-only
/* tcpsem server: one forked child per connection plays the server's role of one check. */
#include "tcpsem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap(int sig)
{
	int e = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = e;
}

static void peer_name(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		netutil_addr_str(&ss, a, sizeof(a), &port);
	snprintf(out, len, "%s:%u", a, port);
}

/*
 * Runs one connection in a child: reads "CHECK <name>\n" byte by byte, then
 * the check's server role.  The whole connection is bounded by
 * alarm(--timeout) (SIGALRM's default action ends the child).  Failures are
 * logged on stderr; the exit status is 0 or EX_FAIL.
 */
static int handle_conn(int fd, const struct opts *o)
{
	char line[LINE_MAX_LEN + 8], peer[80];
	const struct check *ck = NULL;
	struct ctx c = { .o = o };
	int n, rc = -1;

	alarm((unsigned)o->timeout + 1);
	peer_name(fd, peer, sizeof(peer));
	detail[0] = 0;
	n = recv_line(fd, line, sizeof(line));
	if (n == -1)
		fail_sys("reading the CHECK line");
	else if (n == -2)
		fail("no CHECK line (EOF or longer than %d bytes)", LINE_MAX_LEN);
	else if (strncmp(line, "CHECK ", 6) != 0)
		fail("bad first line '%.80s' (expected 'CHECK <name>')", line);
	else if (!(ck = check_find(line + 6)))
		fail("unknown check '%.80s'", line + 6);
	if (ck) {
		c.check = ck;
		rc = ck->server(fd, &c);
	} else {
		/* Tell a client of another version why nothing happens. */
		send_verdict(fd, -1);
	}
	close(fd);
	if (rc < 0)
		fprintf(stderr, "tcpsem server: %s: %s: %s\n", peer, ck ? ck->name : "?", detail);
	return rc < 0 ? EX_FAIL : EX_OK;
}

int cmd_server(const struct opts *o)
{
	struct sockaddr_storage ss, bound;
	struct sigaction sa;
	socklen_t len;
	const char *failed;
	char a[INET6_ADDRSTRLEN], unresolved[256];
	unsigned port;
	int lfd;

	if (netutil_resolve(o->bind, o->port, &ss, &len, unresolved, sizeof(unresolved)) < 0) {
		fprintf(stderr, "tcpsem server: cannot resolve '%s'\n", unresolved);
		return EX_NET;
	}
	lfd = netutil_listen(&ss, len, &bound, &failed);
	if (lfd < 0) {
		fprintf(stderr, "tcpsem server: %s %s:%u: %s\n", failed, o->bind, o->port,
			strerror(errno));
		return EX_NET;
	}
	netutil_addr_str(&bound, a, sizeof(a), &port);
	fprintf(stderr, "tcpsem: listening on %s:%u\n", a, port);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = reap;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED) {
				perror("tcpsem server: accept");
				usleep(100000); /* e.g. EMFILE: don't spin */
			}
			continue;
		}
		pid = fork();
		if (pid == 0) {
			signal(SIGCHLD, SIG_DFL);
			close(lfd);
			_exit(handle_conn(fd, o));
		}
		if (pid < 0)
			perror("tcpsem server: fork");
		close(fd);
	}
}
