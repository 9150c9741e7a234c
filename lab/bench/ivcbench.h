/* SPDX-License-Identifier: GPL-2.0-only */
/* ivcbench: shared declarations (wire protocol, options, helpers). */
#ifndef IVCBENCH_H
#define IVCBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/netutil.h"

#define IVCB_VERSION "1.2.0"
#define IVCB_PROTOCOL 1

/* Exit codes (stable interface). */
enum { EX_OK = 0, EX_VERIFY = 1, EX_USAGE = 2, EX_NET = 3 };

/*
 * Wire protocol, all integers big-endian, encoded byte by byte (no struct
 * layout is ever sent).  See README.md for the tables.
 *
 * Request header, client -> server, 48 bytes:
 *   0  4  magic "IVCB"
 *   4  2  version (IVCB_PROTOCOL)
 *   6  1  mode (MODE_STREAM, MODE_RR, MODE_BLOCK, MODE_PIPELINE)
 *   7  1  direction (DIR_SEND: client -> server, DIR_RECV: server -> client)
 *   8  4  msg_size
 *  12  4  flags (HDR_F_CORRUPT, HDR_F_READ_DELAY)
 *  16  8  total: stream or block bytes, rr request count (0 = until EOF),
 *         or pipeline request count (warm-up included, at least 1)
 *  24  8  seed
 *  32  8  corrupt_at (stream offset, valid with HDR_F_CORRUPT)
 *  40  4  read_delay_ms (stream only, valid with HDR_F_READ_DELAY, at most
 *         READ_DELAY_MAX_MS): the stream's receiver sleeps that long after
 *         the handshake before its first read of the data; zero otherwise
 *  44  4  reserved, must be zero
 * The two fields at 40 were once one reserved u64 that every client sent as
 * zero, so the layout and length are unchanged; a server that predates
 * HDR_F_READ_DELAY rejects a request with that flag (status 2).
 * Ack, server -> client, 16 bytes: "IVCA", u16 version, u16 status, 8 zero.
 * Block mode: the client sends the header and the block back to back; the
 * server answers ack and report together (one write) after the last byte, or
 * a non-zero ack at once if it rejects the header.
 * Pipeline: the server answers each request with msg_size bytes as it reads
 * it, and sends its report after the last answer (pipeline.c).
 * Report, receiver -> sender at the end of a stream, 32 bytes:
 *   "IVCR", u32 flags (REPORT_F_VERIFIED), u64 bytes_received,
 *   u64 checksum, u64 mismatch_offset (all ones = none).
 */
#define HDR_LEN 48
#define ACK_LEN 16
#define REPORT_LEN 32
enum { MODE_STREAM = 1, MODE_RR = 2, MODE_BLOCK = 3, MODE_PIPELINE = 4 };
enum { DIR_SEND = 0, DIR_RECV = 1 };
enum { ACK_OK = 0, ACK_BAD_VERSION = 1, ACK_BAD_REQUEST = 2 };
#define HDR_F_CORRUPT 1u
#define HDR_F_READ_DELAY 2u
/* --read-delay: largest value, in milliseconds (10 minutes). */
#define READ_DELAY_MAX_MS 600000u
#define REPORT_F_VERIFIED 1u
#define NO_MISMATCH UINT64_MAX

/* Largest message: big enough for any experiment, small enough for a domU. */
#define MSG_SIZE_MAX (16u << 20)
/* Latency samples kept by rr (4 bytes each, so at most 40 MB). */
#define RR_COUNT_MAX 10000000u
/* Blocks (connections) in one block run, warm-up excluded. */
#define BLOCK_COUNT_MAX 100000u
/* memcpy's ring: default and largest size. */
#define RING_SIZE_DEFAULT (1u << 20)
#define RING_SIZE_MAX (1u << 30)
/* The block server's read size, whatever the client's write size. */
#define BLOCK_RECV_BUF (256u << 10)

struct hdr {
	uint16_t version;
	uint8_t mode, direction;
	uint32_t msg_size, flags;
	uint64_t total, seed, corrupt_at;
	uint32_t read_delay_ms;
};

struct report {
	uint32_t flags;
	uint64_t bytes, checksum, mismatch;
};

void hdr_encode(const struct hdr *h, uint8_t out[HDR_LEN]);
/* Returns 0 and fills h, or -1 if the magic is wrong. */
int hdr_decode(const uint8_t in[HDR_LEN], struct hdr *h);
/* Returns an ACK_* status for a decoded header. */
int hdr_check(const struct hdr *h);
void ack_encode(uint16_t status, uint8_t out[ACK_LEN]);
/* Returns the status, or -1 on a malformed ack. */
int ack_decode(const uint8_t in[ACK_LEN]);
void report_encode(const struct report *r, uint8_t out[REPORT_LEN]);
int report_decode(const uint8_t in[REPORT_LEN], struct report *r);

/* Command-line options (one struct for every command). */
struct opts {
	const char *host, *bind;
	unsigned port;
	int once, serial, verbose;
	uint64_t bytes;
	uint32_t msg_size;
	uint64_t seed;
	int direction;
	double timeout, connect_timeout;
	int corrupt;
	uint64_t corrupt_at;
	uint64_t count, warmup;
	double seconds;
	uint64_t ring_size; /* memcpy */
	uint32_t read_delay_ms; /* stream: the receiver's delay before reading */
	uint64_t read_delay_at; /* stream --direction recv: the client's delay comes after this many bytes */
};

/* ---- net.c ---- */
extern char ivcb_err[512];
void set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like set_err, appends ": <strerror(errno)>" (or a timeout note). */
void set_err_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern double io_timeout_s; /* used in timeout messages */
uint64_t now_ns(void);
/* Sleeps ms milliseconds (CLOCK_MONOTONIC, the whole delay even if interrupted). */
void sleep_ms(uint32_t ms);
int net_connect(const char *host, unsigned port, double connect_timeout,
		double io_timeout, int nodelay);
/* Resolves host (netutil_resolve) once, for many connections; -1 with the error set. */
int net_resolve(const char *host, unsigned port, struct sockaddr_storage *ss,
		socklen_t *len);
/* net_connect to an address resolved by net_resolve (host and port: for messages). */
int net_connect_addr(const struct sockaddr_storage *ss, socklen_t len,
		     const char *host, unsigned port, double connect_timeout,
		     double io_timeout, int nodelay);
int net_listen(const char *bind, unsigned port, unsigned *actual_port);
int net_set_timeouts(int fd, double seconds);
int net_set_nodelay(int fd);
/* Returns bytes read (< n only at EOF) or -1. */
ssize_t read_full(int fd, void *buf, size_t n);
void peer_name(int fd, char *out, size_t len);

/* ---- json (main.c) ---- */
struct json {
	char buf[2048];
	size_t len;
	int n;
};
void json_begin(struct json *j);
void json_str(struct json *j, const char *key, const char *val);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_num(struct json *j, const char *key, double v, int decimals);
void json_bool(struct json *j, const char *key, int v);
void json_hex(struct json *j, const char *key, uint64_t v);
/* Writes the line to stdout with a single write(). */
void json_emit(struct json *j);
/* Prints {"tool","mode","error"} and returns EX_NET. */
int json_error(const char *mode, const char *msg);

/* ---- stream.c ---- */
struct pattern;
struct recv_result {
	uint64_t bytes, checksum, mismatch;
};
/* checksum may be NULL (not computed). */
int stream_send(int fd, const struct pattern *p, uint64_t total,
		uint32_t msg_size, int corrupt, uint64_t corrupt_at,
		uint64_t *checksum);
/* Reads to EOF, verifying and checksumming every byte. */
int stream_recv_paused(int fd, const struct pattern *p, uint32_t msg_size,
		       uint64_t pause_at, uint32_t pause_ms, struct recv_result *r);
int stream_recv(int fd, const struct pattern *p, uint32_t msg_size,
		struct recv_result *r);
/* The same, but stops after exactly total bytes (fewer only at EOF). */
int stream_recv_exact(int fd, const struct pattern *p, size_t bufsz,
		      uint64_t total, struct recv_result *r);
uint64_t stream_expected_checksum(const struct pattern *p, uint64_t total,
				  int corrupt, uint64_t corrupt_at);
size_t pattern_window_for(uint32_t msg_size);
int cmd_stream(const struct opts *o);

/* ---- lat.c: per-operation times (rr requests, blocks) ---- */
struct lat {
	uint32_t *ns; /* one sample each, saturated at ~4.29 s */
	uint64_t n, cap, sum, min, max; /* sum, min, max: exact */
};
/* Room for cap samples up front (lat_add grows the array otherwise). */
int lat_reserve(struct lat *l, uint64_t cap);
int lat_add(struct lat *l, uint64_t ns);
void lat_sort(struct lat *l);
/* Nearest-rank percentile (0 < q <= 1) in microseconds; lat_sort first. */
double lat_pct_us(const struct lat *l, double q);
double lat_mean_us(const struct lat *l);
/* PREFIX_min, _p50, _p90, _p99, _max, _mean in microseconds; lat_sort first. */
void lat_json(struct json *j, const struct lat *l, const char *prefix);
void lat_free(struct lat *l);

/* ---- rr.c ---- */
int cmd_rr(const struct opts *o);
/* Server side of rr: echo msg_size-byte requests until EOF. */
int rr_serve(int fd, const struct pattern *p, uint32_t msg_size,
	     uint64_t *count, int *verified);

/* ---- block.c ---- */
int cmd_block(const struct opts *o);
/*
 * Server side of one block (the header is read, its ack not sent yet):
 * reads exactly h->total bytes, verifies them, sends ack + report in one
 * write.  Returns 0 (*r and *verified filled) or -1 (error set).
 */
int block_serve(int fd, const struct pattern *p, const struct hdr *h,
		struct recv_result *r, int *verified);

/* ---- pipeline.c ---- */
int cmd_pipeline(const struct opts *o);
/*
 * Server side of a pipeline (the ack is sent): reads h->total requests of
 * h->msg_size bytes, answering each as it is read, then sends the report.
 * Returns 0 (*r, *count, *verified filled) or -1 (error set).
 */
int pipeline_serve(int fd, const struct pattern *p, const struct hdr *h,
		   struct recv_result *r, uint64_t *count, int *verified);

/* ---- memcpy.c ---- */
int cmd_memcpy(const struct opts *o);

/* ---- server.c ---- */
int cmd_server(const struct opts *o);

#endif
