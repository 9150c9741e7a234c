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
 *   @@FASTIVC ivctop <json Snapshot>   (the demo: one `ivctop --emit` line; a bad one is a warning, never fatal)
 *   @@FASTIVC done
 *
 * Everything here is pure (no I/O): MarkerStream takes chunks and returns events, so it is unit-tested directly.
 */
import { StringDecoder } from 'node:string_decoder';
import { snapshotProblem, type Snapshot } from '../../tui/src/data/types.js';

export const MARKER_PREFIX = '@@FASTIVC ';

/**
 * A line longer than this is cut here and the rest of it, up to the next newline, is dropped (a wedged console must
 * not grow memory without bound). Large enough for an `ivctop` snapshot of a busy host (a few KiB per tunnel).
 */
export const MAX_LINE_CHARS = 4 * 1024 * 1024;

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
  /** One raw ivctop Snapshot (what `ivctop --emit` prints), streamed by dom0 during the demo. */
  | { kind: 'ivctop'; snapshot: Snapshot }
  | { kind: 'done' };

/**
 * What parsing one line yields: nothing (not a marker), a marker, a protocol error, or a warning (a malformed
 * `ivctop` line: the demo's data is best effort and never fails the run).
 */
export type LineParse =
  | { kind: 'none' }
  | { kind: 'marker'; marker: Marker }
  | { kind: 'error'; message: string }
  | { kind: 'warning'; message: string };

export type MarkerEvent =
  /** Every complete serial line, trailing \r removed. Emitted before any marker/log event for the same line. */
  | { kind: 'line'; line: string }
  /** A parsed marker. */
  | { kind: 'marker'; marker: Marker; line: string }
  /** A line between log-begin and log-end of the named block: log content, never parsed as a marker. */
  | { kind: 'log-line'; name: string; line: string }
  /** A malformed or unexpected marker line; never fatal. */
  | { kind: 'error'; message: string; line: string }
  /** A malformed `ivctop` line (bad JSON, not a snapshot, cut because too long): dropped with a warning. */
  | { kind: 'warning'; message: string; line: string };

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
  if (verb === 'ivctop') return parseIvctop(rest);
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

/** The body of an `ivctop` marker: one Snapshot as JSON. Problems are warnings. */
function parseIvctop(rest: string): LineParse {
  if (rest === '') return { kind: 'warning', message: 'ivctop marker without a snapshot' };
  let v: unknown;
  try {
    v = JSON.parse(rest);
  } catch (e) {
    return { kind: 'warning', message: `ivctop: malformed JSON, snapshot dropped (${(e as Error).message})` };
  }
  const problem = snapshotProblem(v);
  if (problem !== undefined) return { kind: 'warning', message: `ivctop: ${problem}, dropped` };
  return { kind: 'marker', marker: { kind: 'ivctop', snapshot: v as Snapshot } };
}

/** The verb of a marker line (the word after the prefix), or undefined when the line holds no marker. */
export function markerVerb(line: string): string | undefined {
  const at = line.indexOf(MARKER_PREFIX);
  if (at < 0) return undefined;
  const m = /^\s*(\S*)/.exec(line.slice(at + MARKER_PREFIX.length, at + MARKER_PREFIX.length + 64));
  return m?.[1] ?? '';
}

/** One line out of the splitter; `cut` when it was longer than MAX_LINE_CHARS (the rest was dropped). */
export interface SplitLine {
  line: string;
  cut: boolean;
}

/**
 * Splits a byte/string stream into lines. Handles lines split across chunks and multi-byte UTF-8 sequences split
 * across chunks; invalid UTF-8 becomes U+FFFD (the raw bytes are preserved in the serial log, not here).
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  /** The current line's text so far, in pieces (joined once, at its newline: long lines stay linear). */
  private parts: string[] = [];
  private partsChars = 0;
  /** The current line was cut: drop everything up to its newline. */
  private dropping = false;

  constructor(private readonly maxChars = MAX_LINE_CHARS) {}

  push(chunk: Buffer | string): string[] {
    return this.pushLines(chunk).map((l) => l.line);
  }

  /** Like push(), saying which lines were cut. */
  pushLines(chunk: Buffer | string): SplitLine[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    return this.take(text);
  }

  /** Returns the final unterminated line, if any. */
  end(): string[] {
    return this.endLines().map((l) => l.line);
  }

  endLines(): SplitLine[] {
    const out = this.take(this.decoder.end());
    const dropping = this.dropping;
    const rest = this.parts.join('');
    this.parts = [];
    this.partsChars = 0;
    this.dropping = false;
    return dropping || rest === '' ? out : [...out, { line: stripCr(rest), cut: false }];
  }

  private take(text: string): SplitLine[] {
    const out: SplitLine[] = [];
    let start = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', start)) >= 0) {
      if (this.dropping) {
        this.dropping = false;
      } else {
        this.parts.push(text.slice(start, nl));
        const line = this.parts.join('');
        out.push(
          line.length > this.maxChars
            ? { line: stripCr(line.slice(0, this.maxChars)), cut: true }
            : { line: stripCr(line), cut: false },
        );
      }
      this.parts = [];
      this.partsChars = 0;
      start = nl + 1;
    }
    if (!this.dropping && start < text.length) {
      const rest = text.slice(start);
      this.parts.push(rest);
      this.partsChars += rest.length;
      if (this.partsChars > this.maxChars) {
        out.push({ line: stripCr(this.parts.join('').slice(0, this.maxChars)), cut: true });
        this.parts = [];
        this.partsChars = 0;
        this.dropping = true;
      }
    }
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
  private readonly splitter: LineSplitter;
  private open: string | undefined;

  push(chunk: Buffer | string): MarkerEvent[] {
    return this.splitter.pushLines(chunk).flatMap((l) => this.onLine(l.line, l.cut));
  }

  /**
   * Flushes the last unterminated line. A log block still open is reported as an error unless `cutShort` says the
   * stream was interrupted (timeout, kill), in which case an open block is expected.
   */
  end(opts: { cutShort?: boolean } = {}): MarkerEvent[] {
    const events = this.splitter.endLines().flatMap((l) => this.onLine(l.line, l.cut));
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

  private readonly maxChars: number;

  constructor(opts: { maxLineChars?: number } = {}) {
    this.maxChars = opts.maxLineChars ?? MAX_LINE_CHARS;
    this.splitter = new LineSplitter(this.maxChars);
  }

  private onLine(line: string, cut = false): MarkerEvent[] {
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
    if (cut) {
      const verb = markerVerb(line);
      if (verb === 'ivctop') {
        events.push({ kind: 'warning', message: `ivctop: line longer than ${this.maxChars} characters, snapshot dropped`, line });
      } else if (verb !== undefined) {
        events.push({ kind: 'error', message: `marker line longer than ${this.maxChars} characters was cut`, line });
      }
      return events;
    }
    const parsed = parseMarkerLine(line);
    if (parsed.kind === 'error') {
      events.push({ kind: 'error', message: parsed.message, line });
    } else if (parsed.kind === 'warning') {
      events.push({ kind: 'warning', message: parsed.message, line });
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
