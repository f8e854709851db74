// The official openai Node SDK against aiproxy's Responses API: create (buffered) and stream.
import OpenAI from "openai";
import { apiKey, baseURL, check, model, prompts, report } from "./common.mjs";

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20_000 });

async function create() {
  const resp = await client.responses.create({ model, input: prompts.create, instructions: "Be brief." });
  check(resp.object === "response" && resp.status === "completed", `status ${resp.status}`);
  check(resp.output_text.length > 0, "no output_text");
  return { id: resp.id, status: resp.status, text: resp.output_text, usage: resp.usage };
}

async function stream() {
  const stream = client.responses.stream({ model, input: prompts.stream });
  const events = [];
  let deltas = "";
  for await (const event of stream) {
    events.push([event.type, event.sequence_number]);
    if (event.type === "response.output_text.delta") deltas += event.delta;
  }
  const final = await stream.finalResponse();
  check(final.status === "completed", `final status ${final.status}`);
  // The Node stream helper's final response has no output_text convenience: read the items.
  const text = final.output.filter((i) => i.type === "message")
    .flatMap((i) => i.content).filter((c) => c.type === "output_text").map((c) => c.text).join("");
  return { events, deltas, id: final.id, text, usage: final.usage };
}

await report(async () => ({ create: await create(), stream: await stream() }));
