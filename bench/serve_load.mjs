#!/usr/bin/env node
// Load benchmark for a running `strata serve` (or any OpenAI-compatible server): for each
// concurrency level, N clients each stream completions back to back; reports total generated
// tokens/s and time-to-first-token percentiles. Node 18+, no dependencies.
//
//   node bench/serve_load.mjs --url http://127.0.0.1:8080 --concurrency 1,8,32 \
//        --requests 64 --max-tokens 64 [--prompt TEXT] [--api-key KEY]
//
// Every request sets ignore_eos so each one generates exactly --max-tokens tokens (a strata
// extension; other servers ignore it). Tokens are counted from the usage the server reports.
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080' },
    concurrency: { type: 'string', default: '1,8,32' },
    requests: { type: 'string', default: '' }, // per level; default 4 x concurrency, at least 16
    'max-tokens': { type: 'string', default: '64' },
    prompt: { type: 'string', default: 'Once upon a time, in a small village by the sea, there lived' },
    'api-key': { type: 'string', default: '' },
    temperature: { type: 'string', default: '0.8' },
    json: { type: 'boolean', default: false },
  },
});

const headers = { 'Content-Type': 'application/json' };
if (o['api-key']) headers.Authorization = `Bearer ${o['api-key']}`;
const maxTokens = Number(o['max-tokens']);

// One streamed completion: time to the first token and the tokens generated.
async function one(seed) {
  const t0 = performance.now();
  const res = await fetch(`${o.url}/v1/completions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      prompt: o.prompt,
      max_tokens: maxTokens,
      temperature: Number(o.temperature),
      seed,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft = NaN;
  let tokens = 0;
  let buf = '';
  const decoder = new TextDecoder();
  for await (const part of res.body) {
    buf += decoder.decode(part, { stream: true });
    let e;
    while ((e = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, e);
      buf = buf.slice(e + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const c = JSON.parse(ev.slice(6));
      if (Number.isNaN(ttft) && c.choices?.length) ttft = performance.now() - t0;
      if (c.usage) tokens = c.usage.completion_tokens;
    }
  }
  return { ttft, tokens, ms: performance.now() - t0 };
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function level(c) {
  const n = o.requests ? Number(o.requests) : Math.max(16, 4 * c);
  let next = 0;
  const results = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (next < n) results.push(await one(next++));
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const tokens = results.reduce((a, r) => a + r.tokens, 0);
  const ttfts = results.map((r) => r.ttft);
  return {
    concurrency: c,
    requests: n,
    tokens,
    seconds: secs,
    tokens_per_s: tokens / secs,
    per_stream_tokens_per_s: results.reduce((a, r) => a + r.tokens / (r.ms / 1000), 0) / n,
    ttft_p50_ms: pct(ttfts, 50),
    ttft_p99_ms: pct(ttfts, 99),
  };
}

const models = await (await fetch(`${o.url}/v1/models`, { headers })).json();
await one(0); // warm-up: first-touch page faults and thread start-up stay out of the numbers
const rows = [];
for (const c of o.concurrency.split(',').map(Number)) rows.push(await level(c));
if (o.json) {
  console.log(JSON.stringify({ model: models.data?.[0]?.id, max_tokens: maxTokens, rows }, null, 2));
} else {
  console.log(`model ${models.data?.[0]?.id}, ${maxTokens} tokens per request, prompt ${JSON.stringify(o.prompt)}`);
  console.log('| concurrency | requests | total tok/s | tok/s per stream | TTFT p50 (ms) | TTFT p99 (ms) |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(
      `| ${r.concurrency} | ${r.requests} | ${r.tokens_per_s.toFixed(1)} | ${r.per_stream_tokens_per_s.toFixed(1)} | ` +
        `${r.ttft_p50_ms.toFixed(1)} | ${r.ttft_p99_ms.toFixed(1)} |`,
    );
}
