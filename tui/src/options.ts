/** Shared commander argument parsers: they throw InvalidArgumentError, which commander turns into one error line. */
import { isIPv6 } from 'node:net';
import { InvalidArgumentError } from 'commander';
import { DOMID_MAX, formatIP, ipBytes, isDomid, isIPv4, isV4Mapped } from '../../native/lib/index.js';

/** A positive, finite number of seconds (fractions allowed). */
export function parseSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError('expected a positive number of seconds.');
  }
  return n;
}

/** A positive integer. */
export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError('expected a positive integer.');
  }
  return n;
}

/** A non-empty string without control characters (file names, fault names). */
export function parseText(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (value === '' || /[\x00-\x1f\x7f]/.test(value)) {
    throw new InvalidArgumentError('expected non-empty text without control characters.');
  }
  return value;
}

/**
 * A host address for the DEM's table: IPv4 in strict dotted-quad form, or IPv6 in any form inet_pton reads (no zone,
 * no brackets). Returns it as the DEM's tools print it (IPv6 compressed), so that it compares equal to `map list`.
 * Refused like the DEM refuses them: 0.0.0.0, ::, and the IPv4-mapped ::ffff:a.b.c.d (named as IPv4 there).
 */
export function parseIP(value: string): string {
  const b = ipBytes(value);
  if (b === undefined) throw new InvalidArgumentError('expected an IPv4 address a.b.c.d or an IPv6 address.');
  if (b.every((x) => x === 0)) throw new InvalidArgumentError(`${value} is not a host address.`);
  if (isV4Mapped(b)) {
    throw new InvalidArgumentError(
      `${value} is an IPv4-mapped IPv6 address: the DEM names it as IPv4, ${formatIP(b.subarray(12))}.`,
    );
  }
  return formatIP(b);
}

/** An ordinary Xen domain id: an integer 0..32751 (0x7FEF; higher ids are reserved). */
export function parseDomid(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !isDomid(n)) {
    throw new InvalidArgumentError(`expected a domain id, an integer 0..${DOMID_MAX}.`);
  }
  return n;
}

/**
 * Where to listen: `[host:]port`. port 0..65535 (0: any free port); host an IPv4 address (0.0.0.0: every
 * interface), `localhost` or `[IPv6]`; a port alone listens on 127.0.0.1 only.
 */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[^:[\]]+):)?(\d{1,5})$/.exec(value);
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new InvalidArgumentError('expected [host:]port, e.g. 9464 or 0.0.0.0:9464.');
  const h = m[1];
  if (h === undefined) return { host: '127.0.0.1', port };
  if (h.startsWith('[')) {
    if (!isIPv6(h.slice(1, -1))) throw new InvalidArgumentError(`${h} is not an IPv6 address.`);
    return { host: h.slice(1, -1), port };
  }
  if (h !== 'localhost' && h !== '0.0.0.0' && !isIPv4(h)) {
    throw new InvalidArgumentError('expected the host as an IPv4 address, localhost or [IPv6].');
  }
  return { host: h, port };
}
