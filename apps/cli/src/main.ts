// `nixyard`: the process around the CLI (commands.ts): real streams and environment, Ctrl-C
// turned into an abort signal, and the exit code.

import { run } from './commands.js';

const interrupt = new AbortController();
process.once('SIGINT', () => interrupt.abort());

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  signal: interrupt.signal,
});
process.exitCode = code;
