// SPDX-License-Identifier: GPL-2.0-only
/*
 * lab-agent: tiny remote command runner for the fastivc QEMU lab.
 *
 *   lab-agent serve [--port P] [--bind ADDR]
 *   lab-agent run --host H [--port P] [--timeout SEC] [--connect-timeout SEC] -- CMD...
 *   lab-agent wait --host H [--port P] --timeout SEC
 *
 * Protocol: the client sends one line "<command>\n" (at most 64 KiB); the
 * agent runs /bin/sh -c <command> in its own process group with stdin from
 * /dev/null and stdout+stderr relayed to the socket, then sends
 * "\n@@EXIT <status>\n" (exit code, or 128+signal) and closes.  If the client
 * goes away first (EOF or an error on the socket: so a client must not shut
 * down its sending side), the command's process group is killed (SIGTERM,
 * then SIGKILL after a second).  Output is relayed through a pipe, so
 * background jobs that outlive the shell do not hold the connection open
 * (they should redirect their output: the pipe is closed).  An over-long
 * line gets status 126.  `serve` reports "listening on ADDR:PORT" on stderr
 * (--port 0 picks a free port).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/netutil.h"

#define DEFAULT_PORT 7070
#define CMD_MAX (64 * 1024)   /* command line limit, newline excluded */
#define IO_CHUNK (64 * 1024)
#define TRAILER "\n@@EXIT "
#define HOLD 32               /* output held back: longest possible trailer */
#define CMD_READ_TIMEOUT 30   /* seconds a client may take to send its line */
#define KILL_GRACE_MS 1000    /* SIGTERM -> SIGKILL delay for a process group */

enum { X_USAGE = 2, X_TIMEOUT = 124, X_CONN = 125 };

static const char usage_text[] =
	"usage:\n"
	"  lab-agent serve [--port P] [--bind ADDR]\n"
	"  lab-agent run --host H [--port P] [--timeout SEC] [--connect-timeout SEC] -- CMD...\n"
	"  lab-agent wait --host H [--port P] --timeout SEC\n"
	"run exits with the remote status, 124 on timeout, 125 if it cannot connect\n"
	"or the connection drops; wait exits 0 once an agent runs 'true', else 124.\n";

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ serve */

static int chld_pipe[2] = { -1, -1 };

static void on_chld_handler(int sig)
{
	int e = errno;

	(void)sig;
	if (write(chld_pipe[1], "c", 1) < 0) {
		/* pipe full: a wakeup is already pending */
	}
	errno = e;
}

static void reap_all(int sig)
{
	int e = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = e;
}

static int decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

/* SIGTERM the group, wait a little, then SIGKILL; reaps the shell. */
static void kill_group(pid_t pgid, pid_t shell, int *shell_reaped)
{
	int waited = 0;

	kill(-pgid, SIGTERM);
	kill(-pgid, SIGCONT);
	while (waited < KILL_GRACE_MS) {
		if (!*shell_reaped && waitpid(shell, NULL, WNOHANG) == shell)
			*shell_reaped = 1;
		if (*shell_reaped && kill(-pgid, 0) < 0 && errno == ESRCH)
			return;
		msleep(20);
		waited += 20;
	}
	kill(-pgid, SIGKILL);
	if (!*shell_reaped && waitpid(shell, NULL, 0) == shell)
		*shell_reaped = 1;
}

/* Ends the connection so that the trailer is not lost to a reset. */
static void close_gracefully(int fd)
{
	struct timeval tv = { 2, 0 };
	char buf[4096];

	shutdown(fd, SHUT_WR);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

static void serve_conn(int fd)
{
	char *cmd = malloc(CMD_MAX + 2), buf[IO_CHUNK], trailer[64];
	struct timeval tv = { CMD_READ_TIMEOUT, 0 };
	struct sigaction sa;
	size_t len = 0;
	char *nl = NULL;
	int out[2], status = 0, shell_reaped = 0, out_eof = 0, client_gone = 0;
	pid_t pid;

	if (!cmd)
		_exit(1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (!nl && len < CMD_MAX + 1) {
		ssize_t r = read(fd, cmd + len, CMD_MAX + 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			_exit(0); /* client gave up before sending a command */
		nl = memchr(cmd + len, '\n', (size_t)r);
		len += (size_t)r;
	}
	if (!nl) {
		static const char msg[] = "lab-agent: command line longer than 64 KiB\n"
					  TRAILER "126\n";

		netutil_send_full(fd, msg, sizeof(msg) - 1);
		close_gracefully(fd);
		_exit(0);
	}
	*nl = 0;
	if (nl > cmd && nl[-1] == '\r')
		nl[-1] = 0;
	tv.tv_sec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	if (pipe2(chld_pipe, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(out, O_CLOEXEC) < 0)
		_exit(1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_chld_handler;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);

	pid = fork();
	if (pid < 0) {
		snprintf(trailer, sizeof(trailer), "lab-agent: fork: %s\n" TRAILER "126\n",
			 strerror(errno));
		netutil_send_full(fd, trailer, strlen(trailer));
		close_gracefully(fd);
		_exit(0);
	}
	if (pid == 0) {
		sigset_t none;
		int devnull = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 ||
		    dup2(out[1], 2) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid); /* also here, so the group exists before we signal it */
	close(out[1]);

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = out_eof ? -1 : out[0], .events = POLLIN },
			{ .fd = fd, .events = POLLIN | POLLRDHUP },
			{ .fd = chld_pipe[0], .events = POLLIN },
		};
		int st;

		if (poll(p, 3, 1000) < 0 && errno != EINTR)
			break;
		if (p[2].revents) {
			while (read(chld_pipe[0], buf, sizeof(buf)) > 0)
				;
		}
		if (p[0].revents) {
			ssize_t r = read(out[0], buf, sizeof(buf));

			if (r > 0) {
				if (netutil_send_full(fd, buf, (size_t)r) < 0) {
					client_gone = 1;
					break;
				}
			} else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
				out_eof = 1;
			}
		}
		if (p[1].revents) {
			ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

			/* Anything after the command line is ignored; EOF or an
			 * error means the client is gone. */
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				client_gone = 1;
				break;
			}
		}
		if (!shell_reaped && waitpid(pid, &st, WNOHANG) == pid) {
			shell_reaped = 1;
			status = decode_status(st);
		}
		if (shell_reaped) {
			/* Relay what is already buffered; a background job may
			 * keep the pipe open, so do not wait for EOF. */
			fcntl(out[0], F_SETFL, O_NONBLOCK);
			while (!out_eof) {
				ssize_t r = read(out[0], buf, sizeof(buf));

				if (r > 0) {
					if (netutil_send_full(fd, buf, (size_t)r) < 0) {
						client_gone = 1;
						break;
					}
					continue;
				}
				if (r < 0 && errno == EINTR)
					continue;
				break;
			}
			break;
		}
	}
	close(out[0]);
	if (client_gone) {
		kill_group(pid, pid, &shell_reaped);
		close(fd);
		_exit(0);
	}
	snprintf(trailer, sizeof(trailer), TRAILER "%d\n", status);
	netutil_send_full(fd, trailer, strlen(trailer));
	close_gracefully(fd);
	_exit(0);
}

static int listen_on(const char *bind_addr, unsigned port)
{
	struct sockaddr_storage ss, bound;
	socklen_t len;
	const char *failed;
	int fd;
	char a[INET6_ADDRSTRLEN] = "";

	if (netutil_resolve(bind_addr, port, &ss, &len, NULL, 0) < 0) {
		fprintf(stderr, "lab-agent: cannot resolve bind address '%s'\n", bind_addr);
		return -1;
	}
	fd = netutil_listen(&ss, len, &bound, &failed);
	if (fd < 0) {
		if (!strcmp(failed, "socket"))
			perror("lab-agent: socket");
		else
			fprintf(stderr, "lab-agent: bind/listen %s:%u: %s\n", bind_addr, port,
				strerror(errno));
		return -1;
	}
	netutil_addr_str(&bound, a, sizeof(a), &port);
	fprintf(stderr, "lab-agent: listening on %s:%u\n", a, port);
	return fd;
}

static int cmd_serve(const char *bind_addr, unsigned port)
{
	struct sigaction sa;
	int lfd = listen_on(bind_addr, port);

	if (lfd < 0)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = reap_all;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), one = 1;
		pid_t pid;

		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED) {
				perror("lab-agent: accept");
				msleep(100); /* e.g. EMFILE: don't spin */
			}
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		pid = fork();
		if (pid == 0) {
			close(lfd);
			serve_conn(fd);
		}
		if (pid < 0)
			perror("lab-agent: fork");
		close(fd);
	}
}

/* ------------------------------------------------------------- run, wait */

/*
 * Length of the longest tail of buf[0..len) that could still become the
 * trailer "\n@@EXIT <digits>\n": it starts with '\n', follows TRAILER as far
 * as it goes, then digits, then at most a final '\n'. At most HOLD bytes.
 */
static size_t trailer_tail(const char *buf, size_t len)
{
	size_t tl = strlen(TRAILER), i = len > HOLD ? len - HOLD : 0;

	for (; i < len; i++) {
		size_t k;

		if (buf[i] != '\n')
			continue;
		for (k = 0; i + k < len && k < tl && buf[i + k] == TRAILER[k]; k++)
			;
		if (i + k == len)
			return len - i;         /* a prefix of TRAILER */
		if (k < tl)
			continue;
		for (k = i + tl; k < len && buf[k] >= '0' && buf[k] <= '9'; k++)
			;
		if (k == len || (k == len - 1 && buf[k] == '\n' && k > i + tl))
			return len - i;
	}
	return 0;
}

/*
 * Runs cmd on the agent (the socket is non-blocking); output goes to out_fd
 * (or nowhere if -1).  Returns the remote status, -X_TIMEOUT when the
 * deadline passes, -X_CONN when the connection fails or drops without a
 * trailer.
 */
static int remote_run(int fd, const char *cmd, double deadline, int out_fd)
{
	static char pend[HOLD + IO_CHUNK];
	size_t plen = 0, clen = strlen(cmd), sent = 0;
	char *line = malloc(clen + 1);
	int out_ok = out_fd >= 0;

	if (!line)
		return -X_CONN;
	memcpy(line, cmd, clen);
	line[clen++] = '\n';
	for (;;) {
		struct pollfd p = { fd, POLLIN | (sent < clen ? POLLOUT : 0), 0 };
		double left = deadline - netutil_now_s();
		int r;
		ssize_t n;

		if (left <= 0) {
			free(line);
			return -X_TIMEOUT;
		}
		r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno != EINTR) {
			free(line);
			return -X_CONN;
		}
		if (r <= 0)
			continue;
		if (sent < clen && (p.revents & POLLOUT)) {
			n = send(fd, line + sent, clen - sent, MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				free(line);
				return -X_CONN;
			}
			if (n > 0)
				sent += (size_t)n;
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(fd, pend + plen, sizeof(pend) - plen);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		plen += (size_t)n;
		/* Output everything but a tail that may be (the start of) the
		 * trailer, so output reaches the caller as it is produced. */
		{
			size_t keep = trailer_tail(pend, plen);

			if (plen > keep) {
				if (out_ok && netutil_write_full(out_fd, pend, plen - keep) < 0)
					out_ok = 0;
				memmove(pend, pend + plen - keep, keep);
				plen = keep;
			}
		}
	}
	free(line);
	/* EOF (or reset): the stream must end with "\n@@EXIT <digits>\n". */
	{
		size_t tl = strlen(TRAILER), i;

		for (i = plen >= tl + 2 ? plen - tl - 2 + 1 : 0; i-- > 0;) {
			size_t k = i + tl;
			long st = 0;

			if (memcmp(pend + i, TRAILER, tl) != 0)
				continue;
			if (k >= plen - 1 || pend[plen - 1] != '\n')
				break;
			for (; k < plen - 1; k++) {
				if (pend[k] < '0' || pend[k] > '9' || st > 100000)
					break;
				st = st * 10 + (pend[k] - '0');
			}
			if (k != plen - 1)
				break;
			if (out_ok && i)
				netutil_write_full(out_fd, pend, i);
			return (int)(st > 255 ? 255 : st);
		}
	}
	if (out_ok && plen)
		netutil_write_full(out_fd, pend, plen);
	return -X_CONN;
}

struct cli {
	const char *host, *bind;
	unsigned port;
	double timeout, connect_timeout;
	int have_timeout;
	char *cmd;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("lab-agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see 'lab-agent help')\n", stderr);
	return X_USAGE;
}

static int parse_secs(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1e7)
		return -1;
	*out = v;
	return 0;
}

static int cmd_run(const struct cli *c)
{
	struct sockaddr_storage ss;
	socklen_t len;
	double start = netutil_now_s();
	int fd, st, e = 0;

	if (netutil_resolve(c->host, c->port, &ss, &len, NULL, 0) < 0) {
		fprintf(stderr, "lab-agent: cannot resolve host '%s'\n", c->host);
		return X_CONN;
	}
	fd = netutil_connect_retry(&ss, len, start + c->connect_timeout, 200, 0, &e);
	if (fd < 0) {
		fprintf(stderr, "lab-agent: connect to %s:%u: %s (gave up after %.1f s)\n",
			c->host, c->port, strerror(e), netutil_now_s() - start);
		return X_CONN;
	}
	st = remote_run(fd, c->cmd, netutil_now_s() + c->timeout, STDOUT_FILENO);
	close(fd);
	if (st == -X_TIMEOUT) {
		fprintf(stderr, "lab-agent: timed out after %g s: %s\n", c->timeout, c->cmd);
		return X_TIMEOUT;
	}
	if (st < 0) {
		fprintf(stderr, "lab-agent: connection to %s:%u dropped without an exit status\n",
			c->host, c->port);
		return X_CONN;
	}
	return st;
}

static int cmd_wait(const struct cli *c)
{
	struct sockaddr_storage ss;
	socklen_t len;
	double deadline = netutil_now_s() + c->timeout;

	if (netutil_resolve(c->host, c->port, &ss, &len, NULL, 0) < 0) {
		fprintf(stderr, "lab-agent: cannot resolve host '%s'\n", c->host);
		return X_CONN;
	}
	for (;;) {
		double left = deadline - netutil_now_s();
		int fd, st = -1;

		if (left <= 0)
			break;
		fd = netutil_connect_once(&ss, len, left < 2 ? left : 2, 0);
		if (fd >= 0) {
			double d = netutil_now_s() + 5;

			st = remote_run(fd, "true", d < deadline ? d : deadline, -1);
			close(fd);
			if (st == 0)
				return 0;
		}
		left = deadline - netutil_now_s();
		if (left <= 0)
			break;
		msleep(left < 0.2 ? (int)(left * 1000) + 1 : 200);
	}
	fprintf(stderr, "lab-agent: no agent answered on %s:%u within %g s\n",
		c->host, c->port, c->timeout);
	return X_TIMEOUT;
}

int main(int argc, char **argv)
{
	struct cli c = { .bind = "0.0.0.0", .port = DEFAULT_PORT, .timeout = 300,
			 .connect_timeout = 30 };
	const char *mode;
	size_t clen = 0;
	int i, is_serve, is_run, is_wait;

	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		return usage_error("missing command");
	mode = argv[1];
	if (!strcmp(mode, "help") || !strcmp(mode, "--help") || !strcmp(mode, "-h")) {
		fputs(usage_text, stdout);
		return 0;
	}
	is_serve = !strcmp(mode, "serve");
	is_run = !strcmp(mode, "run");
	is_wait = !strcmp(mode, "wait");
	if (!is_serve && !is_run && !is_wait)
		return usage_error("unknown command '%s'", mode);
	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (strncmp(a, "--", 2) != 0) {
			if (is_run)
				break; /* command words without "--" */
			return usage_error("unexpected argument '%s'", a);
		}
		if (!v && strcmp(a, "--help"))
			return usage_error("option '%s' needs a value", a);
		if (!strcmp(a, "--port")) {
			char *end;
			unsigned long p = strtoul(v, &end, 10);

			if (!*v || *end || p > 65535 || (p == 0 && !is_serve))
				return usage_error("bad --port '%s'", v);
			c.port = (unsigned)p;
		} else if (!strcmp(a, "--bind") && is_serve) {
			c.bind = v;
		} else if (!strcmp(a, "--host") && !is_serve) {
			c.host = v;
		} else if (!strcmp(a, "--timeout") && !is_serve) {
			if (parse_secs(v, &c.timeout) < 0)
				return usage_error("bad --timeout '%s'", v);
			c.have_timeout = 1;
		} else if (!strcmp(a, "--connect-timeout") && is_run) {
			if (parse_secs(v, &c.connect_timeout) < 0)
				return usage_error("bad --connect-timeout '%s'", v);
		} else {
			return usage_error("unknown option '%s' for '%s'", a, mode);
		}
		i++;
	}
	if (is_serve) {
		if (i < argc)
			return usage_error("unexpected argument '%s'", argv[i]);
		return cmd_serve(c.bind, c.port);
	}
	if (!c.host)
		return usage_error("'%s' needs --host", mode);
	if (is_wait) {
		if (i < argc)
			return usage_error("unexpected argument '%s'", argv[i]);
		if (!c.have_timeout)
			return usage_error("'wait' needs --timeout");
		return cmd_wait(&c);
	}
	if (i >= argc)
		return usage_error("'run' needs a command after '--'");
	for (int k = i; k < argc; k++)
		clen += strlen(argv[k]) + 1;
	if (clen - 1 > CMD_MAX)
		return usage_error("command longer than 64 KiB");
	c.cmd = malloc(clen);
	if (!c.cmd)
		return X_CONN;
	c.cmd[0] = 0;
	for (int k = i; k < argc; k++) {
		if (strchr(argv[k], '\n'))
			return usage_error("the command must be a single line");
		if (k > i)
			strcat(c.cmd, " ");
		strcat(c.cmd, argv[k]);
	}
	return cmd_run(&c);
}
