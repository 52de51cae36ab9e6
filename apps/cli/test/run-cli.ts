// The CLI in-process, for its tests: `run` with captured stdout and stderr and a given stdin.

import { PassThrough, Readable } from 'node:stream';
import { run } from '../src/commands.js';

export async function runCli(args: string[], options: { env: Record<string, string>; stdin?: string }): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await run(args, {
    stdout,
    stderr,
    stdin: Readable.from(options.stdin !== undefined ? [Buffer.from(options.stdin)] : []),
    env: options.env,
  });
  return { code, out, err };
}
