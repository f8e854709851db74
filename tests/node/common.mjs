// Shared by the check scripts: settings from the environment and the one-JSON-line report.
export const baseURL = required("AIPROXY_BASE_URL"); // e.g. http://127.0.0.1:8080/v1
export const apiKey = required("AIPROXY_API_KEY");
export const model = process.env.AIPROXY_MODEL ?? "gemini-2.5-flash";
// Prompts come from the Python test (they carry the emulator's scripting directives).
export const prompts = JSON.parse(required("AIPROXY_PROMPTS"));

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return value;
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// Runs the checks, prints one JSON line ({ok, ...results} or {ok: false, error}), sets the exit code.
export async function report(run) {
  try {
    const results = await run();
    console.log(JSON.stringify({ ok: true, ...results }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, error: String(err?.stack ?? err) }));
    process.exitCode = 1;
  }
}
