/** Shared commander argument parsers: they throw InvalidArgumentError, which commander turns into one error line. */
import { InvalidArgumentError } from 'commander';

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
