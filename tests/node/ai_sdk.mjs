// The Vercel AI SDK's OpenAI provider in its default (Responses API) mode against aiproxy:
// a multi-step tool loop with generateText, then the same loop streamed with streamText.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";
import { apiKey, baseURL, check, model, prompts, report } from "./common.mjs";

const openai = createOpenAI({ baseURL, apiKey });
const toolCalls = [];
const tools = {
  get_weather: tool({
    description: "Weather for a city",
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => {
      toolCalls.push(city);
      return { city, forecast: "sunny" };
    },
  }),
};

function summary(result, steps) {
  return {
    text: result.text,
    steps: steps.map((s) => ({
      finishReason: s.finishReason,
      toolCalls: s.toolCalls.map((c) => [c.toolName, c.input]),
      toolResults: s.toolResults.map((r) => r.output),
      text: s.text,
      usage: { input: s.usage.inputTokens, output: s.usage.outputTokens },
      responseId: s.response.id,
    })),
  };
}

async function generate() {
  const result = await generateText({
    model: openai(model), tools, stopWhen: stepCountIs(4), prompt: prompts.loop, maxRetries: 0,
  });
  check(result.steps.length >= 2, `only ${result.steps.length} step(s)`);
  return summary(result, result.steps);
}

async function stream() {
  const result = streamText({
    model: openai(model), tools, stopWhen: stepCountIs(4), prompt: prompts.loop, maxRetries: 0,
    onError: ({ error }) => { throw error; },
  });
  const parts = [];
  for await (const part of result.fullStream) {
    if (part.type === "error") throw part.error;
    if (parts.at(-1) !== part.type) parts.push(part.type); // collapse runs of deltas
  }
  const steps = await result.steps;
  const out = summary({ text: await result.text }, steps);
  return { ...out, parts };
}

await report(async () => ({ generate: await generate(), stream: await stream(), toolCalls }));
