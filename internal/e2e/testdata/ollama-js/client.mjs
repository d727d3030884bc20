// Drives the official ollama npm client against a Courier gateway and
// prints what it got as one JSON object; internal/e2e TestOllamaJSClient
// checks it. Usage: node client.mjs HOST MODEL
import { Ollama } from 'ollama'

const [host, model] = process.argv.slice(2)
const ollama = new Ollama({ host })
const out = {}

const list = await ollama.list()
out.list = list.models.map((m) => ({ name: m.name, family: m.details.family, quant: m.details.quantization_level, size: m.size }))

const show = await ollama.show({ model })
out.show = { family: show.details.family, format: show.details.format, arch: show.model_info['general.architecture'], template: show.template.length > 0 }

const messages = [{ role: 'user', content: 'Tell me a story.' }]
const options = { temperature: 0, num_predict: 16 }
let streamed = ''
let last = null
let parts = 0
for await (const part of await ollama.chat({ model, messages, options, stream: true })) {
  streamed += part.message.content
  parts++
  last = part
}
out.chatStream = { text: streamed, parts, done: last.done, done_reason: last.done_reason, eval_count: last.eval_count, prompt_eval_count: last.prompt_eval_count }

const whole = await ollama.chat({ model, messages, options })
out.chat = { text: whole.message.content, role: whole.message.role, done: whole.done, eval_count: whole.eval_count }

const gen = await ollama.generate({ model, prompt: 'Once upon a time', raw: true, options: { temperature: 0, num_predict: 20 } })
out.generate = { text: gen.response, done: gen.done, done_reason: gen.done_reason, eval_count: gen.eval_count, total_duration: gen.total_duration }

const structured = await ollama.generate({
  model, prompt: 'Is the sky blue?', stream: false,
  format: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false },
  options: { temperature: 0, num_predict: 32 },
})
out.format = { text: structured.response, done_reason: structured.done_reason }

const emb = await ollama.embed({ model, input: ['Once upon a time', 'The cat sat'] })
out.embed = { count: emb.embeddings.length, dims: emb.embeddings.map((v) => v.length), norms: emb.embeddings.map((v) => Math.sqrt(v.reduce((a, x) => a + x * x, 0))), prompt_eval_count: emb.prompt_eval_count }

try {
  await ollama.chat({ model, messages, options: { mirostat: 2 } })
  out.badOption = 'accepted'
} catch (e) {
  out.badOption = { status: e.status_code, error: e.error }
}

console.log(JSON.stringify(out))
