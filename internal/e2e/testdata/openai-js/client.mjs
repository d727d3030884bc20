// Drives the official openai npm client against a Courier node: a forced
// tool call (not streamed, streamed chunk by chunk, and through the
// client's own stream helper), then the tool's result sent back as a
// role "tool" message for the final answer. Prints one JSON object.
import OpenAI from 'openai';

const [base, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'none', maxRetries: 0 });
const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
}];
const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
const params = { model, messages, tools, tool_choice: 'required', parallel_tool_calls: false, temperature: 0, max_tokens: 200 };
const out = {};

const r = await client.chat.completions.create(params);
out.call = { finish: r.choices[0].finish_reason, calls: r.choices[0].message.tool_calls };

// Streamed: the pieces as they come.
const s = await client.chat.completions.create({ ...params, stream: true });
const calls = [];
let pieces = 0, heads = 0, finish = null;
for await (const ch of s) {
  const c = ch.choices[0];
  if (!c) continue;
  for (const tc of c.delta?.tool_calls ?? []) {
    pieces++;
    if (tc.id) {
      heads++;
      calls[tc.index] = { id: tc.id, type: tc.type, function: { name: tc.function.name, arguments: tc.function.arguments ?? '' } };
    } else {
      calls[tc.index].function.arguments += tc.function?.arguments ?? '';
    }
  }
  if (c.finish_reason) finish = c.finish_reason;
}
out.stream = { finish, calls, pieces, heads };

// The client's own accumulator.
const helper = client.chat.completions.stream(params);
const fin = await helper.finalChatCompletion();
out.helper = { finish: fin.choices[0].finish_reason, calls: fin.choices[0].message.tool_calls };

// The round trip: the call and its result go back; the model answers.
const call = r.choices[0].message.tool_calls[0];
const base2 = { model, tools, tool_choice: 'auto', temperature: 0, max_tokens: 16 };
const before = await client.chat.completions.create({ ...base2, messages });
const after = await client.chat.completions.create({
  ...base2,
  messages: [...messages, r.choices[0].message, { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ temperature: 21 }) }],
});
out.answer = {
  finish: after.choices[0].finish_reason,
  content: after.choices[0].message.content,
  calls: after.choices[0].message.tool_calls ?? [],
  promptBefore: before.usage.prompt_tokens,
  promptAfter: after.usage.prompt_tokens,
};
process.stdout.write(JSON.stringify(out));
