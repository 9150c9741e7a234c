// SPDX-License-Identifier: GPL-2.0-only
/* ivcbench: command line and JSON output. */
#include "ivcbench.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
	"usage:\n"
	"  ivcbench server [--port P] [--bind ADDR] [--once | --serial] [--verbose]\n"
	"                  [--timeout SEC] [--seed X]\n"
	"  ivcbench stream --host H [--port P] --bytes N [--msg-size S] [--seed X]\n"
	"                  [--direction send|recv] [--timeout SEC] [--connect-timeout SEC]\n"
	"                  [--corrupt-at OFFSET] [--read-delay MS [--read-delay-at OFFSET]]\n"
	"  ivcbench rr --host H [--port P] [--msg-size S] (--count N | --seconds T)\n"
	"              [--warmup N] [--seed X] [--timeout SEC] [--connect-timeout SEC]\n"
	"  ivcbench block --host H [--port P] --bytes N [--msg-size S]\n"
	"                 (--count K | --seconds T) [--warmup W] [--seed X]\n"
	"                 [--timeout SEC] [--connect-timeout SEC] [--corrupt-at OFFSET]\n"
	"  ivcbench pipeline --host H [--port P] --count N [--msg-size S] [--warmup W]\n"
	"                    [--seed X] [--timeout SEC] [--connect-timeout SEC]\n"
	"  ivcbench memcpy --bytes N [--msg-size S] [--ring-size B] [--seed X]\n"
	"  ivcbench version\n"
	"Sizes accept a K, M or G suffix (powers of 1024). Output: one JSON line.\n"
	"stream --read-delay MS (0 to 600000): the receiver (client with --direction\n"
	"recv, else the server) waits MS ms after the handshake before reading;\n"
	"with --direction recv, --read-delay-at OFFSET: after reading OFFSET bytes.\n"
	"Exit: 0 ok, 1 verification failed, 2 usage, 3 network/timeout.\n";

/* ---- JSON ---- */

static void jputs(struct json *j, const char *s)
{
	size_t n = strlen(s);

	if (j->len + n < sizeof(j->buf) - 3) {
		memcpy(j->buf + j->len, s, n);
		j->len += n;
	}
}

static void jkey(struct json *j, const char *key)
{
	jputs(j, j->n++ ? ",\"" : "\"");
	jputs(j, key);
	jputs(j, "\":");
}

void json_begin(struct json *j)
{
	j->len = 0;
	j->n = 0;
	jputs(j, "{");
}

void json_str(struct json *j, const char *key, const char *val)
{
	char esc[8];

	jkey(j, key);
	jputs(j, "\"");
	for (; *val; val++) {
		unsigned char c = (unsigned char)*val;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			esc[2] = 0;
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
		} else {
			esc[0] = (char)c;
			esc[1] = 0;
		}
		jputs(j, esc);
	}
	jputs(j, "\"");
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	char b[32];

	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	jkey(j, key);
	jputs(j, b);
}

void json_i64(struct json *j, const char *key, int64_t v)
{
	char b[32];

	snprintf(b, sizeof(b), "%lld", (long long)v);
	jkey(j, key);
	jputs(j, b);
}

void json_num(struct json *j, const char *key, double v, int decimals)
{
	char b[64];

	if (!isfinite(v))
		v = 0;
	snprintf(b, sizeof(b), "%.*f", decimals, v);
	jkey(j, key);
	jputs(j, b);
}

void json_bool(struct json *j, const char *key, int v)
{
	jkey(j, key);
	jputs(j, v ? "true" : "false");
}

void json_hex(struct json *j, const char *key, uint64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%016llx", (unsigned long long)v);
	json_str(j, key, b);
}

void json_emit(struct json *j)
{
	size_t off = 0;

	j->buf[j->len++] = '}';
	j->buf[j->len++] = '\n';
	while (off < j->len) {
		ssize_t r = write(STDOUT_FILENO, j->buf + off, j->len - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
}

int json_error(const char *mode, const char *msg)
{
	struct json j;

	json_begin(&j);
	json_str(&j, "tool", "ivcbench");
	json_str(&j, "mode", mode);
	json_str(&j, "error", msg);
	json_emit(&j);
	fprintf(stderr, "ivcbench %s: %s\n", mode, msg);
	return EX_NET;
}

/* ---- command line ---- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("ivcbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see 'ivcbench help')\n", stderr);
	return EX_USAGE;
}

enum {
	O_HOST, O_PORT, O_BIND, O_ONCE, O_VERBOSE, O_BYTES, O_MSG_SIZE, O_SEED,
	O_DIRECTION, O_TIMEOUT, O_CONNECT_TIMEOUT, O_CORRUPT_AT, O_COUNT,
	O_SECONDS, O_WARMUP, O_RING_SIZE, O_READ_DELAY, O_READ_DELAY_AT, O_SERIAL,
};

static const struct {
	const char *name;
	int has_arg;
} optdefs[] = {
	[O_HOST] = { "host", 1 },	    [O_PORT] = { "port", 1 },
	[O_BIND] = { "bind", 1 },	    [O_ONCE] = { "once", 0 },
	[O_VERBOSE] = { "verbose", 0 },	    [O_BYTES] = { "bytes", 1 },
	[O_MSG_SIZE] = { "msg-size", 1 },   [O_SEED] = { "seed", 1 },
	[O_DIRECTION] = { "direction", 1 }, [O_TIMEOUT] = { "timeout", 1 },
	[O_CONNECT_TIMEOUT] = { "connect-timeout", 1 },
	[O_CORRUPT_AT] = { "corrupt-at", 1 },
	[O_COUNT] = { "count", 1 },	    [O_SECONDS] = { "seconds", 1 },
	[O_WARMUP] = { "warmup", 1 },	    [O_RING_SIZE] = { "ring-size", 1 },
	[O_READ_DELAY] = { "read-delay", 1 },
	[O_READ_DELAY_AT] = { "read-delay-at", 1 },
	[O_SERIAL] = { "serial", 0 },
};
#define NOPTS (int)(sizeof(optdefs) / sizeof(optdefs[0]))
#define BIT(x) (1u << (x))

static const unsigned allowed_server = BIT(O_PORT) | BIT(O_BIND) |
	BIT(O_ONCE) | BIT(O_SERIAL) | BIT(O_VERBOSE) | BIT(O_TIMEOUT) | BIT(O_SEED);
static const unsigned allowed_client = BIT(O_HOST) | BIT(O_PORT) |
	BIT(O_MSG_SIZE) | BIT(O_SEED) | BIT(O_TIMEOUT) | BIT(O_CONNECT_TIMEOUT);
static const unsigned allowed_stream = BIT(O_BYTES) | BIT(O_DIRECTION) |
	BIT(O_CORRUPT_AT) | BIT(O_READ_DELAY) | BIT(O_READ_DELAY_AT);
static const unsigned allowed_rr = BIT(O_COUNT) | BIT(O_SECONDS) | BIT(O_WARMUP);
static const unsigned allowed_block = BIT(O_BYTES) | BIT(O_COUNT) |
	BIT(O_SECONDS) | BIT(O_WARMUP) | BIT(O_CORRUPT_AT);
static const unsigned allowed_pipeline = BIT(O_COUNT) | BIT(O_WARMUP);
static const unsigned allowed_memcpy = BIT(O_BYTES) | BIT(O_MSG_SIZE) |
	BIT(O_RING_SIZE) | BIT(O_SEED);

/* Unsigned integer: decimal (or 0x hex if allow_hex), optional K/M/G suffix. */
static int parse_u64(const char *s, uint64_t *out, int allow_suffix, int allow_hex)
{
	char *end;
	unsigned long long v;
	int base = 10;

	if (allow_hex && (s[0] == '0') && (s[1] == 'x' || s[1] == 'X'))
		base = 16;
	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || end == s)
		return -1;
	if (allow_suffix && *end) {
		unsigned shift = 0;

		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: return -1;
		}
		end++;
		if (v > (~0ull >> shift))
			return -1;
		v <<= shift;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int parse_secs(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v <= 0 || v > 1e7)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.bind = "0.0.0.0",
		.port = 7001,
		.msg_size = 65536,
		.seed = 1,
		.direction = DIR_SEND,
		.timeout = 120,
		.connect_timeout = 30,
		.warmup = 10,
		.ring_size = RING_SIZE_DEFAULT,
	};
	const char *cmd;
	unsigned seen = 0, allowed;
	uint64_t v, count_max;
	int i;

	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		return usage_error("missing command");
	cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage_text, stdout);
		return EX_OK;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		if (argc > 2)
			return usage_error("'version' takes no arguments");
		printf("{\"tool\":\"ivcbench\",\"version\":\"%s\",\"protocol\":%d}\n",
		       IVCB_VERSION, IVCB_PROTOCOL);
		return EX_OK;
	}
	if (!strcmp(cmd, "server"))
		allowed = allowed_server;
	else if (!strcmp(cmd, "stream"))
		allowed = allowed_client | allowed_stream;
	else if (!strcmp(cmd, "rr"))
		allowed = allowed_client | allowed_rr;
	else if (!strcmp(cmd, "block"))
		allowed = allowed_client | allowed_block;
	else if (!strcmp(cmd, "pipeline"))
		allowed = allowed_client | allowed_pipeline;
	else if (!strcmp(cmd, "memcpy"))
		allowed = allowed_memcpy;
	else
		return usage_error("unknown command '%s'", cmd);
	count_max = strcmp(cmd, "block") ? RR_COUNT_MAX : BLOCK_COUNT_MAX;

	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		size_t nlen;
		int id;

		if (strncmp(a, "--", 2) != 0)
			return usage_error("unexpected argument '%s'", a);
		a += 2;
		eq = strchr(a, '=');
		nlen = eq ? (size_t)(eq - a) : strlen(a);
		for (id = 0; id < NOPTS; id++)
			if (strlen(optdefs[id].name) == nlen &&
			    !strncmp(optdefs[id].name, a, nlen))
				break;
		if (id == NOPTS || !(allowed & BIT(id)))
			return usage_error("unknown option '%s' for '%s'", argv[i], cmd);
		if (seen & BIT(id))
			return usage_error("option '--%s' given twice", optdefs[id].name);
		seen |= BIT(id);
		if (optdefs[id].has_arg) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return usage_error("option '--%s' needs a value",
						   optdefs[id].name);
		} else if (eq) {
			return usage_error("option '--%s' takes no value",
					   optdefs[id].name);
		}
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
			if (parse_u64(val, &v, 0, 0) < 0 || v > 65535 ||
			    (v == 0 && strcmp(cmd, "server")))
				return usage_error("bad --port '%s'", val);
			o.port = (unsigned)v;
			break;
		case O_ONCE:
			o.once = 1;
			break;
		case O_SERIAL:
			o.serial = 1;
			break;
		case O_VERBOSE:
			o.verbose = 1;
			break;
		case O_BYTES:
			if (parse_u64(val, &o.bytes, 1, 0) < 0 || o.bytes > (1ull << 62))
				return usage_error("bad --bytes '%s'", val);
			break;
		case O_MSG_SIZE:
			if (parse_u64(val, &v, 1, 0) < 0 || v < 1 || v > MSG_SIZE_MAX)
				return usage_error("bad --msg-size '%s' (1 to 16M)", val);
			o.msg_size = (uint32_t)v;
			break;
		case O_SEED:
			if (parse_u64(val, &o.seed, 0, 1) < 0)
				return usage_error("bad --seed '%s'", val);
			break;
		case O_DIRECTION:
			if (!strcmp(val, "send"))
				o.direction = DIR_SEND;
			else if (!strcmp(val, "recv"))
				o.direction = DIR_RECV;
			else
				return usage_error("bad --direction '%s' (send or recv)", val);
			break;
		case O_TIMEOUT:
			if (parse_secs(val, &o.timeout) < 0)
				return usage_error("bad --timeout '%s'", val);
			break;
		case O_CONNECT_TIMEOUT:
			if (parse_secs(val, &o.connect_timeout) < 0)
				return usage_error("bad --connect-timeout '%s'", val);
			break;
		case O_CORRUPT_AT:
			if (parse_u64(val, &o.corrupt_at, 1, 0) < 0)
				return usage_error("bad --corrupt-at '%s'", val);
			o.corrupt = 1;
			break;
		case O_COUNT:
			if (parse_u64(val, &o.count, 1, 0) < 0 || o.count < 1 ||
			    o.count > count_max)
				return usage_error("bad --count '%s' (1 to %llu)", val,
						   (unsigned long long)count_max);
			break;
		case O_SECONDS:
			if (parse_secs(val, &o.seconds) < 0)
				return usage_error("bad --seconds '%s'", val);
			break;
		case O_WARMUP:
			if (parse_u64(val, &o.warmup, 1, 0) < 0 || o.warmup > count_max)
				return usage_error("bad --warmup '%s'", val);
			break;
		case O_RING_SIZE:
			if (parse_u64(val, &o.ring_size, 1, 0) < 0 || o.ring_size < 1 ||
			    o.ring_size > RING_SIZE_MAX)
				return usage_error("bad --ring-size '%s' (1 to 1G)", val);
			break;
		case O_READ_DELAY:
			if (parse_u64(val, &v, 0, 0) < 0 || v > READ_DELAY_MAX_MS)
				return usage_error("bad --read-delay '%s' (0 to %u ms)", val,
						   READ_DELAY_MAX_MS);
			o.read_delay_ms = (uint32_t)v;
			break;
		case O_READ_DELAY_AT:
			if (parse_u64(val, &o.read_delay_at, 1, 0) < 0)
				return usage_error("bad --read-delay-at '%s'", val);
			break;
		}
	}

	if (!strcmp(cmd, "server"))
		return cmd_server(&o);
	if (!strcmp(cmd, "memcpy")) {
		if (!(seen & BIT(O_BYTES)) || o.bytes < 1)
			return usage_error("'memcpy' needs --bytes (at least 1)");
		return cmd_memcpy(&o);
	}
	if (!o.host)
		return usage_error("'%s' needs --host", cmd);
	if (!strcmp(cmd, "stream")) {
		if (!(seen & BIT(O_BYTES)))
			return usage_error("'stream' needs --bytes");
		if (o.corrupt && o.corrupt_at >= o.bytes)
			return usage_error("--corrupt-at must be below --bytes");
		if ((seen & BIT(O_READ_DELAY_AT)) &&
		    (!o.read_delay_ms || o.direction != DIR_RECV || o.read_delay_at >= o.bytes))
			return usage_error("--read-delay-at needs --read-delay, --direction recv and an OFFSET below --bytes");
		return cmd_stream(&o);
	}
	if (!strcmp(cmd, "pipeline")) {
		if (!(seen & BIT(O_COUNT)))
			return usage_error("'pipeline' needs --count");
		return cmd_pipeline(&o);
	}
	if (!!(seen & BIT(O_COUNT)) == !!(seen & BIT(O_SECONDS)))
		return usage_error("'%s' needs exactly one of --count and --seconds", cmd);
	if (!strcmp(cmd, "block")) {
		if (!(seen & BIT(O_BYTES)) || o.bytes < 1)
			return usage_error("'block' needs --bytes (at least 1)");
		if (o.corrupt && o.corrupt_at >= o.bytes)
			return usage_error("--corrupt-at must be below --bytes");
		if (!(seen & BIT(O_MSG_SIZE)))
			o.msg_size = o.bytes < 65536 ? (uint32_t)o.bytes : 65536;
		if (!(seen & BIT(O_WARMUP)))
			o.warmup = 2;
		return cmd_block(&o);
	}
	return cmd_rr(&o);
}
