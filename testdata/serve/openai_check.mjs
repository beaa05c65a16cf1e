// Checks a running `loom serve` through the openai npm client: the models
// list, a completion and a chat completion, each streamed and not, with
// log-probs and penalties, and the errors the client raises for a bad
// request and an unknown model. It starts nothing: check.sh serves the
// tiny model with a chat template and runs it. It prints the results as
// JSON (log-probs rounded to 4 decimals; ids and times left out).
//
//   LOOM_URL=http://127.0.0.1:8080/v1 node openai_check.mjs
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.LOOM_URL ?? "http://127.0.0.1:8080/v1",
  apiKey: "unused",
  maxRetries: 0,
  timeout: 60_000,
});
const round = (x) => Math.round(x * 1e4) / 1e4;

const results = {};
const models = await client.models.list();
const model = models.data[0].id;
results.models = models.data.map((m) => ({ id: m.id, object: m.object }));

const prompt = "package main\n\nfunc main() {\n";
const completion = await client.completions.create({ model, prompt, max_tokens: 12, temperature: 0, logprobs: 2 });
const c = completion.choices[0];
results.completion = {
  object: completion.object,
  text: c.text,
  finish_reason: c.finish_reason,
  usage: completion.usage,
  tokens: c.logprobs.tokens,
  token_logprobs: c.logprobs.token_logprobs.map(round),
  top_logprobs: c.logprobs.top_logprobs.map((t) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, round(v)]))),
};

let text = "", finish = null, usage = null, chunks = 0;
const stream = await client.completions.create({ model, prompt, max_tokens: 12, temperature: 0, stream: true, stop: [" !"] });
for await (const chunk of stream) {
  chunks++;
  text += chunk.choices[0].text;
  finish = chunk.choices[0].finish_reason ?? finish;
  usage = chunk.usage ?? usage;
}
results.completion_stream = { text, finish_reason: finish, usage, chunks_at_least_2: chunks >= 2 };

const messages = [{ role: "system", content: "You write Go." }, { role: "user", content: "A loop, please." }];
const chat = await client.chat.completions.create({
  model, messages, max_completion_tokens: 16, temperature: 0, logprobs: true, top_logprobs: 2,
  frequency_penalty: 0.5, presence_penalty: 0.2,
});
const ch = chat.choices[0];
results.chat = {
  object: chat.object,
  message: ch.message,
  finish_reason: ch.finish_reason,
  usage: chat.usage,
  logprobs: ch.logprobs.content.map((e) => ({
    token: e.token, logprob: round(e.logprob), bytes: e.bytes,
    top_logprobs: e.top_logprobs.map((t) => ({ token: t.token, logprob: round(t.logprob) })),
  })),
};

text = ""; finish = null; usage = null;
let role = null;
const chatStream = await client.chat.completions.create({
  model, messages, max_tokens: 16, temperature: 0.7, seed: 42, stream: true, repetition_penalty: 1.1,
});
for await (const chunk of chatStream) {
  const d = chunk.choices[0].delta;
  role = d.role ?? role;
  text += d.content ?? "";
  finish = chunk.choices[0].finish_reason ?? finish;
  usage = chunk.usage ?? usage;
}
results.chat_stream = { object: "chat.completion.chunk", role, text, finish_reason: finish, usage };

async function failure(f) {
  try {
    await f();
    return "no error";
  } catch (e) {
    if (!(e instanceof OpenAI.APIError)) throw e;
    return { class: e.constructor.name, status: e.status, type: e.type, code: e.code, param: e.param, message: e.message };
  }
}
results.error_bad_request = await failure(() => client.completions.create({ model, prompt, max_tokens: 4, temperature: -1 }));
results.error_unknown_model = await failure(() => client.chat.completions.create({ model: "gpt-9", messages }));
results.error_context = await failure(() => client.completions.create({ model, prompt, max_tokens: 1 << 20 }));

console.log(JSON.stringify(results, null, 2));
