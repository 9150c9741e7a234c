/** Shared commander argument parsers: they throw InvalidArgumentError, which commander turns into one error line. */
import { InvalidArgumentError } from 'commander';
import { DOMID_MAX, isDomid, isIPv4 } from '../../native/lib/index.js';

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

/** A host IPv4 address in strict dotted-quad form (no leading zeros), not 0.0.0.0. */
export function parseIPv4(value: string): string {
  if (!isIPv4(value)) throw new InvalidArgumentError('expected an IPv4 address a.b.c.d.');
  if (value === '0.0.0.0') throw new InvalidArgumentError('0.0.0.0 is not a host address.');
  return value;
}

/** An ordinary Xen domain id: an integer 0..32751 (0x7FEF; higher ids are reserved). */
export function parseDomid(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !isDomid(n)) {
    throw new InvalidArgumentError(`expected a domain id, an integer 0..${DOMID_MAX}.`);
  }
  return n;
}
