// Drives Courier's stored chat completions with the official openai npm
// client; internal/e2e TestStoredCompletionsNodeClient checks what it prints
// (one JSON object on stdout).
//
//   node stored.mjs create BASE_URL KEY MODEL
//     stores a plain and a streamed chat completion (store: true, metadata)
//     and makes one with store: false.
//   node stored.mjs check BASE_URL KEY OTHER_KEY PLAIN_ID
//     lists (auto-paging by one, and by metadata), retrieves, reads the
//     messages of, updates and deletes with KEY; OTHER_KEY's view of it.
import OpenAI from "openai";

const [mode, baseURL, key, ...rest] = process.argv.slice(2);
const client = (apiKey) => new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30000 });
const c = client(key);

// status runs f and returns 200, or the status of the API error it threw.
async function status(f) {
  try {
    await f();
    return 200;
  } catch (e) {
    if (e instanceof OpenAI.APIError) return e.status;
    throw e;
  }
}

const messages = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Once upon a time" },
];

if (mode === "create") {
  const [model] = rest;
  const params = { model, messages, max_tokens: 8, temperature: 0 };
  const plain = await c.chat.completions.create({ ...params, store: true, metadata: { topic: "plain" } });
  const stream = await c.chat.completions.create({ ...params, stream: true, store: true, metadata: { topic: "streamed" } });
  let streamedID = "";
  let streamedText = "";
  for await (const chunk of stream) {
    streamedID = chunk.id;
    streamedText += chunk.choices[0]?.delta?.content ?? "";
  }
  const unstored = await c.chat.completions.create({ ...params, store: false });
  console.log(JSON.stringify({
    plain: { id: plain.id, text: plain.choices[0].message.content },
    streamed: { id: streamedID, text: streamedText },
    unstored: unstored.id,
  }));
} else if (mode === "check") {
  const [otherKey, plainID] = rest;
  const list = [];
  for await (const cc of c.chat.completions.list({ limit: 1 })) {
    list.push({ id: cc.id, text: cc.choices[0].message.content, finish: cc.choices[0].finish_reason, metadata: cc.metadata });
  }
  const byMetadata = (await c.chat.completions.list({ metadata: { topic: "streamed" } })).data.map((cc) => cc.id);
  const got = await c.chat.completions.retrieve(plainID);
  const msgs = [];
  for await (const m of c.chat.completions.messages.list(plainID, { limit: 1 })) {
    msgs.push({ id: m.id, role: m.role, content: m.content });
  }
  const updated = await c.chat.completions.update(plainID, { metadata: { topic: "changed" } });
  const byNewMetadata = (await c.chat.completions.list({ metadata: { topic: "changed" } })).data.map((cc) => cc.id);

  const other = client(otherKey);
  const otherList = (await other.chat.completions.list()).data.map((cc) => cc.id);
  const otherRetrieve = await status(() => other.chat.completions.retrieve(plainID));
  const otherMessages = await status(() => other.chat.completions.messages.list(plainID));
  const otherUpdate = await status(() => other.chat.completions.update(plainID, { metadata: { a: "b" } }));
  const otherDelete = await status(() => other.chat.completions.delete(plainID));

  const deleted = await c.chat.completions.delete(plainID);
  const retrieveAfterDelete = await status(() => c.chat.completions.retrieve(plainID));
  const left = (await c.chat.completions.list()).data.map((cc) => cc.id);
  console.log(JSON.stringify({
    list, byMetadata,
    retrieved: { id: got.id, text: got.choices[0].message.content, metadata: got.metadata, usage: got.usage },
    messages: msgs,
    updated: updated.metadata, byNewMetadata,
    other: { list: otherList, retrieve: otherRetrieve, messages: otherMessages, update: otherUpdate, delete: otherDelete },
    deleted, retrieveAfterDelete, left,
  }));
} else {
  console.error("usage: stored.mjs create|check ...");
  process.exit(2);
}
