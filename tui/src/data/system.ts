/**
 * What the data sources and `fastivc sync` take from the operating system, behind an interface so tests give fakes:
 * running a command (xenstore-ls, xenstore-list), following a long-running one line by line (xenstore-watch), and
 * reading files (/proc/fastivc/*).
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface ExecResult {
  /** Exit status; null when the command could not be started (then `error` says why) or died by a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the command could not be run at all; `code` is 'ENOENT' when it is not installed. */
  error?: { code: string; message: string };
}

export type CommandRunner = (cmd: string, args: readonly string[]) => Promise<ExecResult>;

export interface LineWatch {
  /** Ends the command (idempotent). */
  stop(): void;
}

/**
 * Starts a long-running command and calls onLine for each output line; onEnd once when it ends or cannot start
 * (with the reason). Used for `xenstore-watch PATH`.
 */
export type LineWatcher = (
  cmd: string,
  args: readonly string[],
  onLine: (line: string) => void,
  onEnd: (why: string) => void,
) => LineWatch;

export type FileReader = (path: string) => Promise<string>;

/** Runs a command to completion (10 s at most), capturing its output. Never rejects. */
export const runCommand: CommandRunner = (cmd, args) =>
  new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const done = (r: ExecResult): void => {
      if (!settled) {
        settled = true;
        resolve(r);
      }
    };
    let child;
    try {
      child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      done({ code: null, stdout, stderr, error: { code: err.code ?? 'EFAULT', message: err.message } });
      return;
    }
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e: NodeJS.ErrnoException) =>
      done({ code: null, stdout, stderr, error: { code: e.code ?? 'EFAULT', message: e.message } }),
    );
    child.on('close', (code) => done({ code, stdout, stderr }));
  });

export const watchLines: LineWatcher = (cmd, args, onLine, onEnd) => {
  let ended = false;
  const end = (why: string): void => {
    if (!ended) {
      ended = true;
      onEnd(why);
    }
  };
  const child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  let errText = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (errText += d));
  child.on('error', (e: NodeJS.ErrnoException) =>
    end(e.code === 'ENOENT' ? `${cmd} not found` : `${cmd}: ${e.message}`),
  );
  child.on('close', (code, signal) =>
    end(`${cmd} ended (${signal ?? `exit ${code}`})${errText.trim() ? `: ${errText.trim().split('\n')[0]}` : ''}`),
  );
  return {
    stop: () => {
      ended = true;
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
};

export const readText: FileReader = (path) => readFile(path, 'utf8');

/** One line explaining why a command failed ("xenstore-ls not found", "xenstore-ls: exit 1: <stderr>"). */
export function commandProblem(cmd: string, r: ExecResult): string | null {
  if (r.error) return r.error.code === 'ENOENT' ? `${cmd} not found (no Xen toolstack here)` : `${cmd}: ${r.error.message}`;
  if (r.code !== 0) {
    const first = r.stderr.trim().split('\n')[0] ?? '';
    return `${cmd} failed (${r.code === null ? 'killed' : `exit ${r.code}`})${first ? `: ${first}` : ''}`;
  }
  return null;
}
