// SPDX-License-Identifier: GPL-2.0-only
/* tcpsem: command line. */
#include "tcpsem.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
	"usage:\n"
	"  tcpsem server [--port P] [--bind ADDR] [--timeout SEC]\n"
	"  tcpsem client --host H [--port P] [--only REGEX] [--timeout SEC] [--expect-ulp NAME|none]\n"
	"  tcpsem list\n"
	"  tcpsem version\n"
	"Checks TCP socket semantics over a real connection. client runs every check\n"
	"(or those whose name matches REGEX), each on a fresh connection and bounded\n"
	"by --timeout (default 30 s), and prints one JSON object.\n"
	"Exit: 0 all checks passed, 1 some failed, 2 usage, 3 server cannot listen.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("tcpsem: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see 'tcpsem help')\n", stderr);
	return EX_USAGE;
}

enum { O_HOST, O_PORT, O_BIND, O_ONLY, O_TIMEOUT, O_EXPECT_ULP };

static const char *const optnames[] = {
	[O_HOST] = "host", [O_PORT] = "port", [O_BIND] = "bind",
	[O_ONLY] = "only", [O_TIMEOUT] = "timeout", [O_EXPECT_ULP] = "expect-ulp",
};
#define NOPTS (int)(sizeof(optnames) / sizeof(optnames[0]))
#define BIT(x) (1u << (x))

static int parse_port(const char *s, int allow_zero, unsigned *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535 || (v == 0 && !allow_zero))
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_secs(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0.1 || v > 86400)
		return -1;
	*out = v;
	return 0;
}

/* --only must compile and match at least one check. */
static int check_only(const char *pattern)
{
	regex_t re;
	size_t i;
	int n = 0;

	if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
		return usage_error("bad --only regex '%s'", pattern);
	for (i = 0; i < n_checks; i++)
		if (checks[i].client && regexec(&re, checks[i].name, 0, NULL, 0) == 0)
			n++;
	regfree(&re);
	if (!n)
		return usage_error("no check name matches --only '%s'", pattern);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.bind = "0.0.0.0",
		.port = DEFAULT_PORT,
		.timeout = 30,
	};
	const char *cmd;
	unsigned seen = 0, allowed;
	size_t k;
	int i;

	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		return usage_error("missing command");
	cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage_text, stdout);
		return EX_OK;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version") || !strcmp(cmd, "list")) {
		if (argc > 2)
			return usage_error("'%s' takes no arguments", cmd);
		if (!strcmp(cmd, "list")) {
			for (k = 0; k < n_checks; k++)
				if (checks[k].client)
					printf("%s\n", checks[k].name);
		} else {
			printf("{\"tool\":\"tcpsem\",\"version\":\"%s\",\"protocol\":%d}\n",
			       TCPSEM_VERSION, TCPSEM_PROTOCOL);
		}
		return EX_OK;
	}
	if (!strcmp(cmd, "server"))
		allowed = BIT(O_PORT) | BIT(O_BIND) | BIT(O_TIMEOUT);
	else if (!strcmp(cmd, "client"))
		allowed = BIT(O_HOST) | BIT(O_PORT) | BIT(O_ONLY) | BIT(O_TIMEOUT) | BIT(O_EXPECT_ULP);
	else
		return usage_error("unknown command '%s'", cmd);

	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *val, *eq;
		size_t nlen;
		int id;

		if (strncmp(a, "--", 2) != 0)
			return usage_error("unexpected argument '%s'", a);
		a += 2;
		eq = strchr(a, '=');
		nlen = eq ? (size_t)(eq - a) : strlen(a);
		for (id = 0; id < NOPTS; id++)
			if (strlen(optnames[id]) == nlen && !strncmp(optnames[id], a, nlen))
				break;
		if (id == NOPTS || !(allowed & BIT(id)))
			return usage_error("unknown option '%s' for '%s'", argv[i], cmd);
		if (seen & BIT(id))
			return usage_error("option '--%s' given twice", optnames[id]);
		seen |= BIT(id);
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return usage_error("option '--%s' needs a value", optnames[id]);
		switch (id) {
		case O_HOST:
			if (!*val)
				return usage_error("empty --host");
			o.host = val;
			break;
		case O_BIND:
			o.bind = val;
			break;
		case O_PORT:
			if (parse_port(val, !strcmp(cmd, "server"), &o.port) < 0)
				return usage_error("bad --port '%s'", val);
			break;
		case O_ONLY:
			o.only = val;
			break;
		case O_EXPECT_ULP:
			if (!*val || strlen(val) > 15)
				return usage_error("bad --expect-ulp '%s' (a ULP name, or none)", val);
			o.expect_ulp = val;
			break;
		case O_TIMEOUT:
			if (parse_secs(val, &o.timeout) < 0)
				return usage_error("bad --timeout '%s' (0.1 to 86400 seconds)", val);
			break;
		}
	}

	if (!strcmp(cmd, "server"))
		return cmd_server(&o);
	if (!o.host)
		return usage_error("'client' needs --host");
	if (o.only && check_only(o.only) != 0)
		return EX_USAGE;
	return cmd_client(&o);
}
