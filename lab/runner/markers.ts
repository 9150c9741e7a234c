/**
 * Serial-console marker protocol: splits QEMU's serial byte stream into lines and parses the `@@FASTIVC` marker
 * lines printed by the lab's dom0 init script.
 *
 * Protocol (one marker per line, possibly preceded by junk such as Xen console prefixes):
 *   @@FASTIVC phase <name> [detail...]
 *   @@FASTIVC plan <name1> <name2> ...
 *   @@FASTIVC versions <json object>
 *   @@FASTIVC result <json {name, pass, metrics, reason?}>
 *   @@FASTIVC log-begin <name>   ... raw lines ...   @@FASTIVC log-end <name>
 *   @@FASTIVC done
 *
 * Everything here is pure (no I/O): MarkerStream takes chunks and returns events, so it is unit-tested directly.
 */
import { StringDecoder } from 'node:string_decoder';

export const MARKER_PREFIX = '@@FASTIVC ';

/** A line longer than this without a newline is cut (a wedged console must not grow memory without bound). */
export const MAX_LINE_CHARS = 64 * 1024;

export type MetricValue = number | string | boolean;

/** One scenario outcome as reported by dom0's `result` marker. */
export interface ScenarioResult {
  name: string;
  pass: boolean;
  metrics: Record<string, MetricValue>;
  reason?: string;
}

export type Marker =
  | { kind: 'phase'; name: string; detail: string[] }
  | { kind: 'plan'; names: string[] }
  | { kind: 'versions'; versions: Record<string, unknown> }
  | { kind: 'result'; result: ScenarioResult }
  | { kind: 'log-begin'; name: string }
  | { kind: 'log-end'; name: string }
  | { kind: 'done' };

/** What parsing one line yields: nothing (not a marker), a marker, or a protocol error. */
export type LineParse = { kind: 'none' } | { kind: 'marker'; marker: Marker } | { kind: 'error'; message: string };

export type MarkerEvent =
  /** Every complete serial line, trailing \r removed. Emitted before any marker/log event for the same line. */
  | { kind: 'line'; line: string }
  /** A parsed marker. */
  | { kind: 'marker'; marker: Marker; line: string }
  /** A line between log-begin and log-end of the named block: log content, never parsed as a marker. */
  | { kind: 'log-line'; name: string; line: string }
  /** A malformed or unexpected marker line; never fatal. */
  | { kind: 'error'; message: string; line: string };

/**
 * Scenario names become file names (<logs>/<name>.log), so they are restricted: letters, digits, '.', '_', '-',
 * not starting with '.', at most 128 characters.
 */
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function isValidScenarioName(name: string): boolean {
  return NAME_RE.test(name);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a parsed `result` JSON value; returns the result or an error message. */
export function validateResult(v: unknown): ScenarioResult | string {
  if (!isPlainObject(v)) return 'result is not a JSON object';
  const { name, pass, metrics, reason } = v;
  if (typeof name !== 'string' || !isValidScenarioName(name)) {
    return `result has an invalid "name" (${JSON.stringify(name) ?? 'missing'})`;
  }
  if (typeof pass !== 'boolean') return `result ${name}: "pass" must be a boolean`;
  const out: Record<string, MetricValue> = {};
  if (metrics !== undefined) {
    if (!isPlainObject(metrics)) return `result ${name}: "metrics" must be an object`;
    for (const [k, val] of Object.entries(metrics)) {
      if (typeof val === 'number' || typeof val === 'string' || typeof val === 'boolean') {
        out[k] = val;
      } else {
        return `result ${name}: metric "${k}" must be a number, string or boolean`;
      }
    }
  }
  if (reason !== undefined && typeof reason !== 'string') return `result ${name}: "reason" must be a string`;
  const result: ScenarioResult = { name, pass, metrics: out };
  if (typeof reason === 'string') result.reason = reason;
  return result;
}

/** Parses one serial line (already split, \r may still be present). */
export function parseMarkerLine(rawLine: string): LineParse {
  const at = rawLine.indexOf(MARKER_PREFIX);
  if (at < 0) return { kind: 'none' };
  const body = rawLine.slice(at + MARKER_PREFIX.length).replace(/\r/g, '').trim();
  const sp = body.search(/\s/);
  const verb = sp < 0 ? body : body.slice(0, sp);
  const rest = sp < 0 ? '' : body.slice(sp + 1).trim();
  const words = rest === '' ? [] : rest.split(/\s+/);

  const needName = (what: string): string | { error: string } => {
    if (words.length !== 1) return { error: `${what} expects exactly one scenario name, got ${words.length}` };
    const name = words[0] as string;
    if (!isValidScenarioName(name)) return { error: `${what}: invalid scenario name ${JSON.stringify(name)}` };
    return name;
  };

  switch (verb) {
    case 'phase': {
      const [name, ...detail] = words;
      if (name === undefined) return { kind: 'error', message: 'phase marker without a name' };
      return { kind: 'marker', marker: { kind: 'phase', name, detail } };
    }
    case 'plan': {
      const bad = words.find((w) => !isValidScenarioName(w));
      if (bad !== undefined) return { kind: 'error', message: `plan: invalid scenario name ${JSON.stringify(bad)}` };
      return { kind: 'marker', marker: { kind: 'plan', names: words } };
    }
    case 'versions': {
      let v: unknown;
      try {
        v = JSON.parse(rest);
      } catch (e) {
        return { kind: 'error', message: `versions: malformed JSON (${(e as Error).message})` };
      }
      if (!isPlainObject(v)) return { kind: 'error', message: 'versions: expected a JSON object' };
      return { kind: 'marker', marker: { kind: 'versions', versions: v } };
    }
    case 'result': {
      let v: unknown;
      try {
        v = JSON.parse(rest);
      } catch (e) {
        return { kind: 'error', message: `result: malformed JSON (${(e as Error).message})` };
      }
      const r = validateResult(v);
      if (typeof r === 'string') return { kind: 'error', message: r };
      return { kind: 'marker', marker: { kind: 'result', result: r } };
    }
    case 'log-begin':
    case 'log-end': {
      const name = needName(verb);
      if (typeof name !== 'string') return { kind: 'error', message: name.error };
      return { kind: 'marker', marker: { kind: verb, name } };
    }
    case 'done':
      if (words.length !== 0) return { kind: 'error', message: 'done takes no arguments' };
      return { kind: 'marker', marker: { kind: 'done' } };
    case '':
      return { kind: 'error', message: 'marker without a verb' };
    default:
      return { kind: 'error', message: `unknown marker verb ${JSON.stringify(verb)}` };
  }
}

/**
 * Splits a byte/string stream into lines. Handles lines split across chunks and multi-byte UTF-8 sequences split
 * across chunks; invalid UTF-8 becomes U+FFFD (the raw bytes are preserved in the serial log, not here).
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  push(chunk: Buffer | string): string[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    return this.take(text);
  }

  /** Returns the final unterminated line, if any. */
  end(): string[] {
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    return rest === '' ? [] : [stripCr(rest)];
  }

  private take(text: string): string[] {
    const out: string[] = [];
    let buf = this.pending + text;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      out.push(stripCr(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
    while (buf.length > MAX_LINE_CHARS) {
      out.push(stripCr(buf.slice(0, MAX_LINE_CHARS)));
      buf = buf.slice(MAX_LINE_CHARS);
    }
    this.pending = buf;
    return out;
  }
}

function stripCr(line: string): string {
  return line.replace(/\r+$/, '').replace(/^\r+/, '');
}

/**
 * Stateful marker parser over a chunked stream. Inside a log block (log-begin NAME ... log-end NAME) every line is
 * log content and nothing else: only the block's own `log-end` is recognised there, so a shipped log (a guest
 * console, dmesg) can never inject markers. Blocks do not nest.
 */
export class MarkerStream {
  private readonly splitter = new LineSplitter();
  private open: string | undefined;

  push(chunk: Buffer | string): MarkerEvent[] {
    return this.splitter.push(chunk).flatMap((l) => this.onLine(l));
  }

  /**
   * Flushes the last unterminated line. A log block still open is reported as an error unless `cutShort` says the
   * stream was interrupted (timeout, kill), in which case an open block is expected.
   */
  end(opts: { cutShort?: boolean } = {}): MarkerEvent[] {
    const events = this.splitter.end().flatMap((l) => this.onLine(l));
    if (this.open !== undefined && opts.cutShort !== true) {
      events.push({ kind: 'error', message: `log block ${this.open} was never closed (log-end missing)`, line: '' });
    }
    this.open = undefined;
    return events;
  }

  /** Name of the log block being received, if any. */
  openLog(): string | undefined {
    return this.open;
  }

  private onLine(line: string): MarkerEvent[] {
    const events: MarkerEvent[] = [{ kind: 'line', line }];
    if (this.open !== undefined) {
      const name = this.open;
      const parsed = line.includes(MARKER_PREFIX) ? parseMarkerLine(line) : undefined;
      if (parsed?.kind === 'marker' && parsed.marker.kind === 'log-end' && parsed.marker.name === name) {
        this.open = undefined;
        events.push({ kind: 'marker', marker: parsed.marker, line });
      } else {
        events.push({ kind: 'log-line', name, line });
      }
      return events;
    }
    const parsed = parseMarkerLine(line);
    if (parsed.kind === 'error') {
      events.push({ kind: 'error', message: parsed.message, line });
    } else if (parsed.kind === 'marker') {
      if (parsed.marker.kind === 'log-begin') this.open = parsed.marker.name;
      if (parsed.marker.kind === 'log-end') {
        events.push({ kind: 'error', message: `log-end ${parsed.marker.name} without log-begin`, line });
      } else {
        events.push({ kind: 'marker', marker: parsed.marker, line });
      }
    }
    return events;
  }
}
