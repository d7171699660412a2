// Shared pieces of the end-to-end tests: start `strata serve` on a free port, wait until the model
// is loaded, run `strata run --json` for reference outputs, read /metrics.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const STRATA = process.env.STRATA_BINARY;
export const MODEL = process.env.STRATA_MODEL;
if (!STRATA || !MODEL) throw new Error('set STRATA_BINARY and STRATA_MODEL (see run.sh)');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts the server with --port 0 and resolves once /health says 200.
export async function startServer(extraArgs = []) {
  const child = spawn(STRATA, ['serve', '-q', '-m', MODEL, '--port', '0', ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 20000);
    child.stderr.on('data', (d) => {
      log += d.toString();
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; ++i) {
    try {
      if ((await fetch(`${base}/health`)).status === 200) break;
    } catch {}
    if (i > 400) throw new Error(`server never became ready:\n${log}`);
    await sleep(50);
  }
  return {
    child,
    port,
    base,
    pid: child.pid,
    log: () => log,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.on('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

// `strata run --json` greedy output: the reference the server must reproduce.
export function runReference(prompt, nPredict, extra = []) {
  const out = execFileSync(
    STRATA,
    ['run', '--json', '-q', '-m', MODEL, '-p', prompt, '-n', String(nPredict), '--temp', '0', ...extra],
    { encoding: 'utf8' },
  );
  return JSON.parse(out);
}

export async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = text.match(new RegExp(`\\n${name} ([0-9.]+)`));
  return m ? Number(m[1]) : NaN;
}

export async function waitFor(pred, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await pred()) return true;
    await sleep(50);
  }
  return false;
}

export function rssKiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) : NaN;
}
