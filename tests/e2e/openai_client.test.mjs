// strata serve through the official `openai` npm client, unchanged: chat and completions,
// streaming and not, with greedy outputs checked against `strata run`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startServer, runReference, metric, waitFor } from './harness.mjs';

let server;
let client;

before(async () => {
  server = await startServer(['--parallel', '4']);
  client = new OpenAI({ baseURL: `${server.base}/v1`, apiKey: 'not-needed', maxRetries: 0 });
});

after(async () => {
  assert.equal(await server.stop(), 0, 'server exits cleanly on SIGTERM');
});

const PROMPT = 'Once upon a time';
const CHAT_PROMPT = 'User: Tell me a story.\nAssistant:'; // the plain template stories260K gets

test('models.list names the loaded model', async () => {
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  assert.equal(models.length, 1);
  assert.equal(models[0].id, 'stories260K');
  assert.equal(models[0].object, 'model');
});

test('completions.create matches strata run (greedy)', async () => {
  const ref = runReference(PROMPT, 32);
  const r = await client.completions.create({ model: 'stories260K', prompt: PROMPT, max_tokens: 32, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, ref.text);
  assert.equal(r.choices[0].finish_reason, ref.finish_reason);
  assert.equal(r.usage.completion_tokens, ref.generated_ids.length);
  assert.equal(r.usage.prompt_tokens, ref.prompt_ids.length);
});

test('completions stream concatenates to strata run output', async () => {
  const ref = runReference(PROMPT, 32);
  const stream = await client.completions.create({
    model: 'stories260K',
    prompt: PROMPT,
    max_tokens: 32,
    temperature: 0,
    stream: true,
  });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0].text;
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, ref.text);
  assert.equal(finish, ref.finish_reason);
});

test('chat.completions.create matches strata run on the templated prompt', async () => {
  const ref = runReference(CHAT_PROMPT, 40, ['--stop', '\nUser:']);
  const r = await client.chat.completions.create({
    model: 'stories260K',
    messages: [{ role: 'user', content: 'Tell me a story.' }],
    max_tokens: 40,
    temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, ref.text);
  assert.equal(r.usage.completion_tokens, ref.generated_ids.length);
  assert.equal(r.usage.prompt_tokens, ref.prompt_ids.length);
});

test('chat stream with include_usage', async () => {
  const ref = runReference(CHAT_PROMPT, 40, ['--stop', '\nUser:']);
  const stream = await client.chat.completions.create({
    model: 'stories260K',
    messages: [{ role: 'user', content: 'Tell me a story.' }],
    max_tokens: 40,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  let role = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      role = c.delta.role ?? role;
      text += c.delta.content ?? '';
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(text, ref.text);
  assert.equal(usage.completion_tokens, ref.generated_ids.length);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
});

test('logprobs and n come back in the shapes the client types describe', async () => {
  const r = await client.chat.completions.create({
    model: 'stories260K',
    messages: [{ role: 'user', content: 'Hi' }],
    max_tokens: 5,
    temperature: 0,
    n: 2,
    logprobs: true,
    top_logprobs: 2,
  });
  assert.equal(r.choices.length, 2);
  assert.equal(r.choices[0].message.content, r.choices[1].message.content);
  for (const t of r.choices[0].logprobs.content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 2);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')].slice(0, t.bytes.length));
  }
});

test('errors surface as typed OpenAI errors', async () => {
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt: PROMPT, temperature: 'hot' }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature',
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'stories260K', messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages',
  );
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt: 'Once upon a time '.repeat(800) }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded',
  );
});

test('aborting a stream cancels the request and frees its cache', async () => {
  const controller = new AbortController();
  const stream = await client.completions.create(
    { model: 'stories260K', prompt: 'Once', max_tokens: 1500, ignore_eos: true, stream: true },
    { signal: controller.signal },
  );
  let n = 0;
  let inUse = 0;
  try {
    for await (const _ of stream) {
      if (++n === 10) {
        inUse = await metric(server.base, 'strata_kv_cache_blocks_used');
        controller.abort();
        break;
      }
    }
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', String(e));
  }
  assert.ok(inUse > 0, 'the request held KV blocks while streaming');
  assert.ok(
    await waitFor(async () => (await metric(server.base, 'strata_kv_cache_blocks_used')) === 0),
    'KV blocks return to 0',
  );
  const r = await client.completions.create({ model: 'stories260K', prompt: PROMPT, max_tokens: 4 });
  assert.equal(r.choices.length, 1);
});
