// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem client: runs each selected check in a forked process on a fresh
 * connection, bounded by a timer (SIGALRM ends the process: a hang becomes a
 * failed check), and prints one JSON object with the results.
 */
#include "tcpsem.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

struct result {
	const char *name;
	int pass;
	long ms;
	char detail[DETAIL_MAX];
};

/* In the check's process: connect, run the client side, report on fd `out`. */
static void __attribute__((noreturn)) check_process(const struct check *ck, const struct opts *o, int out)
{
	struct itimerval it = { { 0, 0 }, { (time_t)o->timeout,
					      (suseconds_t)((o->timeout - (double)(time_t)o->timeout) * 1e6) } };
	struct ctx c = { .check = ck, .o = o };
	char msg[DETAIL_MAX + 2];
	int fd, rc, n;

	setitimer(ITIMER_REAL, &it, NULL);
	detail[0] = 0;
	fd = connect_check(o, ck->name);
	rc = fd < 0 ? -1 : ck->client(fd, &c);
	if (fd >= 0)
		close(fd);
	if (rc < 0 && !detail[0])
		fail("failed (no detail)");
	n = snprintf(msg, sizeof(msg), "%c%s", rc ? 'F' : 'P', detail);
	if (write(out, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1) < 0)
		_exit(EX_NET);
	_exit(0);
}

static void run_one(const struct check *ck, const struct opts *o, struct result *res)
{
	double t0 = now_s();
	char buf[DETAIL_MAX + 1];
	ssize_t n = 0;
	int p[2], st = 0;
	pid_t pid;

	res->name = ck->name;
	res->pass = 0;
	res->detail[0] = 0;
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(res->detail, sizeof(res->detail), "pipe: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		check_process(ck, o, p[1]);
	}
	close(p[1]);
	if (pid < 0) {
		snprintf(res->detail, sizeof(res->detail), "fork: %s", strerror(errno));
		close(p[0]);
		return;
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	res->ms = ms_since(t0);
	/* Non-blocking: a helper process of the check may still hold the pipe. */
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	if (n > 0) {
		buf[n] = 0;
		res->pass = buf[0] == 'P';
		snprintf(res->detail, sizeof(res->detail), "%s", buf + 1);
	} else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
		snprintf(res->detail, sizeof(res->detail), "timed out after %g s", o->timeout);
	} else if (WIFSIGNALED(st)) {
		snprintf(res->detail, sizeof(res->detail), "check process killed by signal %d",
			 WTERMSIG(st));
	} else {
		snprintf(res->detail, sizeof(res->detail),
			 "check process exited with status %d and no result", WEXITSTATUS(st));
	}
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

int cmd_client(const struct opts *o)
{
	struct result *res = calloc(n_checks, sizeof(*res));
	size_t i, nres = 0, size = 0, off = 0;
	unsigned passed = 0, failed = 0;
	regex_t re;
	char *out = NULL;
	FILE *f;

	if (!res) {
		fprintf(stderr, "tcpsem client: out of memory\n");
		return EX_NET;
	}
	if (o->only && regcomp(&re, o->only, REG_EXTENDED | REG_NOSUB) != 0) {
		fprintf(stderr, "tcpsem client: bad --only regex '%s'\n", o->only);
		return EX_USAGE;
	}
	for (i = 0; i < n_checks; i++) {
		const struct check *ck = &checks[i];
		struct result *r = &res[nres];

		if (!ck->client || (o->only && regexec(&re, ck->name, 0, NULL, 0) != 0))
			continue;
		run_one(ck, o, r);
		nres++;
		if (r->pass) {
			passed++;
		} else {
			failed++;
			fprintf(stderr, "tcpsem: FAIL %s: %s\n", r->name, r->detail);
		}
	}
	if (o->only)
		regfree(&re);
	f = open_memstream(&out, &size);
	if (!f) {
		fprintf(stderr, "tcpsem client: open_memstream: %s\n", strerror(errno));
		return EX_NET;
	}
	fputs("{\"checks\":[", f);
	for (i = 0; i < nres; i++) {
		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		json_string(f, res[i].name);
		fprintf(f, ",\"pass\":%s,\"detail\":", res[i].pass ? "true" : "false");
		json_string(f, res[i].detail);
		fprintf(f, ",\"ms\":%ld}", res[i].ms);
	}
	fprintf(f, "],\"passed\":%u,\"failed\":%u}\n", passed, failed);
	fclose(f);
	while (off < size) {
		ssize_t w = write(STDOUT_FILENO, out + off, size - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(out);
	free(res);
	return failed ? EX_FAIL : EX_OK;
}
