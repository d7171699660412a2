// Bounded soak test of strata serve: 1,000 requests over 32 concurrent connections (completions
// and chat, streaming and not, short max_tokens), about 15% of them abandoned by the client at a
// random moment. The server must stay up, answer every request that was not abandoned with
// exactly the greedy text `strata run` gives, free every KV block afterwards, and not grow:
// its RSS at the end may exceed its RSS after the first 200 requests by at most 3 MiB (thread
// stacks and allocator caches of connections first used later), and the heap bytes in use (from
// /metrics) by at most 1 MiB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, runReference, metric, waitFor, rssKiB } from './harness.mjs';

const TOTAL = Number(process.env.SOAK_TOTAL ?? 1000);
const CONCURRENCY = 32;
const WARMUP = 200;
const ABANDON = 0.15;

// Completion prompts with their max_tokens, and chat messages (plain template on stories260K).
const PROMPTS = ['Once upon a time', 'Lily', 'The dog', 'One day', 'Tom and Sue', 'The sun was'];
const CHATS = ['Tell me a story.', 'Who is Lily?'];

let server;
const refs = new Map();

// The references come first: runReference blocks the event loop, and on a busy machine that took
// long enough for the server to close the idle keep-alive connection left by the /health polls,
// which the client then still reused for a request ("other side closed").
before(async () => {
  PROMPTS.forEach((p, i) => refs.set(`c:${p}`, runReference(p, 6 + 2 * i).text));
  CHATS.forEach((c, i) =>
    refs.set(`m:${c}`, runReference(`User: ${c}\nAssistant:`, 10 + 4 * i, ['--stop', '\nUser:']).text),
  );
  server = await startServer(['--parallel', '16', '--queue-limit', '64']);
});

after(async () => {
  if (server) assert.equal(await server.stop(), 0);
});

// Deterministic pseudo-random numbers, so a failure can be replayed.
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);

function makeRequest(k) {
  const chat = k % 4 === 3;
  const stream = k % 2 === 1;
  if (chat) {
    const i = k % CHATS.length;
    return {
      key: `m:${CHATS[i]}`,
      path: '/v1/chat/completions',
      stream,
      body: { messages: [{ role: 'user', content: CHATS[i] }], max_tokens: 10 + 4 * i, temperature: 0, stream },
    };
  }
  const i = k % PROMPTS.length;
  return {
    key: `c:${PROMPTS[i]}`,
    path: '/v1/completions',
    stream,
    body: { prompt: PROMPTS[i], max_tokens: 6 + 2 * i, temperature: 0, stream },
  };
}

// Text of a response body: the JSON answer, or the concatenated SSE chunks (which must end in [DONE]).
function textOf(req, raw) {
  if (!req.stream) {
    const j = JSON.parse(raw);
    return req.path.includes('chat') ? j.choices[0].message.content : j.choices[0].text;
  }
  const events = raw.split('\n\n').filter((e) => e.length);
  assert.equal(events.at(-1), 'data: [DONE]');
  let text = '';
  for (const e of events.slice(0, -1)) {
    const c = JSON.parse(e.slice('data: '.length));
    for (const ch of c.choices) text += req.path.includes('chat') ? (ch.delta.content ?? '') : ch.text;
  }
  return text;
}

test('1000 requests, 32 connections, random disconnects: correct answers, no growth', { timeout: 170000 }, async () => {
  let next = 0;
  let done = 0;
  let abandoned = 0;
  let rssWarm = NaN;
  let heapWarm = NaN;
  const failures = [];
  const t0 = Date.now();

  async function one(k) {
    const req = makeRequest(k);
    const controller = new AbortController();
    const abandon = rand() < ABANDON;
    if (abandon) setTimeout(() => controller.abort(), Math.floor(rand() * 30));
    try {
      const res = await fetch(`${server.base}${req.path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(req.body),
        signal: controller.signal,
      });
      const raw = await res.text();
      if (res.status !== 200) failures.push(`#${k}: HTTP ${res.status} ${raw}`);
      else if (textOf(req, raw) !== refs.get(req.key))
        failures.push(`#${k} ${req.key}: ${JSON.stringify(textOf(req, raw))} != ${JSON.stringify(refs.get(req.key))}`);
    } catch (e) {
      if (!(abandon && e.name === 'AbortError')) failures.push(`#${k}: ${e}`);
      else ++abandoned;
    }
    if (++done === WARMUP) {
      rssWarm = rssKiB(server.pid);
      heapWarm = await metric(server.base, 'strata_heap_in_use_bytes');
    }
    if (process.env.SOAK_TRACE && done % 500 === 0)
      console.log(`after ${done}: RSS ${rssKiB(server.pid)} KiB, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < TOTAL) await one(next++);
    }),
  );
  const secs = (Date.now() - t0) / 1000;
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failures`);
  assert.ok(abandoned > 50, `only ${abandoned} requests were abandoned`);
  assert.ok(await waitFor(async () => (await metric(server.base, 'strata_kv_cache_blocks_used')) === 0));
  assert.equal(await metric(server.base, 'strata_running_sequences'), 0);
  assert.equal((await fetch(`${server.base}/health`)).status, 200);
  const rssEnd = rssKiB(server.pid);
  const heapEnd = await metric(server.base, 'strata_heap_in_use_bytes');
  console.log(
    `soak: ${TOTAL} requests in ${secs.toFixed(1)} s, ${abandoned} abandoned; after ${WARMUP}: RSS ${rssWarm} KiB, ` +
      `heap ${(heapWarm / 1024).toFixed(0)} KiB; at the end: RSS ${rssEnd} KiB, heap ${(heapEnd / 1024).toFixed(0)} KiB`,
  );
  assert.ok(rssEnd <= rssWarm + 3 * 1024, `RSS grew from ${rssWarm} KiB to ${rssEnd} KiB`);
  assert.ok(heapEnd <= heapWarm + 1024 * 1024, `heap in use grew from ${heapWarm} to ${heapEnd} bytes`);
});
