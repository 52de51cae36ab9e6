// The `nixyard` command line: arguments (commander) and what each command does with the admin
// client, the image-list parser and the progress view. `run` takes its streams and environment
// as arguments and returns the exit code, so tests can drive it in-process.
//
// Exit codes: 0 success; 1 the batch settled with failed (or cancelled) images, or fsck found
// problems it left in place; 2 invalid input
// (bad lines in the file, a batch the API refused as invalid, bad arguments); 3 the API could not
// be used (unreachable, auth, unknown batch, server error). 130 when interrupted.

import { readFile } from 'node:fs/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, DEFAULT_GRACE_SECONDS, isAdminErrorCode, isSettled, type PrebuildBatch } from '@nixyard/core';
import { AdminClient, ApiError, ConnectionError, DEFAULT_URL } from './admin-client.js';
import { listProblems, parseImageList, type ImageLine } from './image-list.js';
import { fsckCommand, gcCommand, parseDuration, type FsckCommandOptions, type GcCommandOptions } from './maintenance.js';
import { createProgress, type Progress } from './progress.js';
import { allReady, formatError, formatOutcome, formatStatus, formatSummaryLine } from './summary.js';

export const EXIT = { OK: 0, FAILED: 1, INVALID: 2, ERROR: 3, INTERRUPTED: 130 } as const;

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  /** Aborted on Ctrl-C: `prebuild` stops watching and says how to follow the batch. */
  signal?: AbortSignal;
}

interface ConnectionOptions {
  url: string;
  token?: string;
}

interface PrebuildOptions extends ConnectionOptions {
  wait: boolean;
  json?: boolean;
  label?: string;
  pollInterval: number;
}

/** Polls of a running batch that may fail in a row (API restart, blip) before giving up. */
const POLL_RETRIES = 5;

class Interrupted extends Error {}

/** Carries an exit code and the lines to print out of a command. */
class Exit extends Error {
  constructor(
    readonly code: number,
    readonly lines: string[] = [],
  ) {
    super(lines[0] ?? `exit ${code}`);
  }
}

export async function run(argv: readonly string[], io: Io): Promise<number> {
  const out = (line = '') => io.stdout.write(`${line}\n`);
  const err = (line: string) => io.stderr.write(`${line}\n`);
  let exitCode: number = EXIT.OK;
  const program = buildProgram(io, out, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are "errors" to commander; usage mistakes were already printed.
      return error.exitCode === 0 ? EXIT.OK : EXIT.INVALID;
    }
    if (error instanceof Exit) {
      for (const line of error.lines) err(line);
      return error.code;
    }
    if (error instanceof Interrupted) return EXIT.INTERRUPTED;
    if (error instanceof ConfigError) {
      err(`nixyard: ${error.message}`);
      return EXIT.INVALID;
    }
    for (const line of formatError(error)) err(line);
    return exitCodeOf(error);
  }
}

/** A batch the API refused as invalid is the user's input to fix (exit 2); anything else is an error. */
function exitCodeOf(error: unknown): (typeof EXIT)[keyof typeof EXIT] {
  return error instanceof ApiError && isAdminErrorCode(error.code, 'BATCH_INVALID') ? EXIT.INVALID : EXIT.ERROR;
}

function milliseconds(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 10) throw new InvalidArgumentError('expected milliseconds, an integer of at least 10');
  return n;
}

function connectionOptions(command: Command, env: NodeJS.ProcessEnv): Command {
  return command
    .addOption(new Option('--url <url>', "the registry's base URL (env NIXYARD_URL)").default(env.NIXYARD_URL || DEFAULT_URL))
    .addOption(new Option('--token <token>', 'the admin bearer token (env NIXYARD_ADMIN_TOKEN)').default(env.NIXYARD_ADMIN_TOKEN || undefined, '$NIXYARD_ADMIN_TOKEN'));
}

function clientFor(options: ConnectionOptions): AdminClient {
  return new AdminClient({ url: options.url, token: options.token });
}

function buildProgram(io: Io, out: (line?: string) => void, setExit: (code: number) => void): Command {
  const program = new Command('nixyard')
    .description("Nixyard's admin command line: prebuild batches of images so first pulls are warm.")
    .showHelpAfterError('(run nixyard help for usage)')
    .allowExcessArguments(false)
    // Set before the subcommands are added, which copy these settings.
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  connectionOptions(
    program
      .command('prebuild')
      .description('submit the images listed in FILE (one per line, # comments; - for stdin) and wait until all are built')
      .argument('<file>', 'the image list, or - for standard input')
      .option('--no-wait', 'print the batch id and return once the batch is accepted')
      .option('--json', 'print the batch as JSON (the final state; with --no-wait, the submission answer) and no progress')
      .option('--label <label>', 'a label for the batch, shown by status and list')
      .addOption(new Option('--poll-interval <ms>', 'how often to ask for progress').argParser(milliseconds).default(1000)),
    io.env,
  ).action(async (file: string, options: PrebuildOptions) => setExit(await prebuild(file, options, io, out)));

  connectionOptions(
    program.command('status').description('show a batch: its state, counts and failed images').argument('<id>', 'the batch id').option('--json', 'print the batch as JSON'),
    io.env,
  ).action(async (id: string, options: ConnectionOptions & { json?: boolean }) => {
    const batch = await clientFor(options).get(id);
    if (options.json) out(JSON.stringify(batch, null, 2));
    else formatStatus(batch).forEach((line) => out(line));
  });

  connectionOptions(
    program.command('cancel').description("remove a batch's images that have not started building").argument('<id>', 'the batch id').option('--json', 'print the answer as JSON'),
    io.env,
  ).action(async (id: string, options: ConnectionOptions & { json?: boolean }) => {
    const cancelled = await clientFor(options).cancel(id);
    if (options.json) out(JSON.stringify({ id, cancelled }));
    else out(`cancelled ${cancelled} queued image${cancelled === 1 ? '' : 's'} of batch ${id}`);
  });

  connectionOptions(program.command('list').description('list recent batches, newest first').option('--json', 'print them as JSON'), io.env).action(
    async (options: ConnectionOptions & { json?: boolean }) => {
      const batches = await clientFor(options).list();
      if (options.json) out(JSON.stringify({ batches }, null, 2));
      else if (batches.length === 0) out('no batches');
      else batches.forEach((b) => out(formatSummaryLine(b)));
    },
  );

  program
    .command('gc')
    .description(
      'delete blobs that no manifest uses, and temporary files (tmp/, incomplete S3 uploads) that writers which died left behind ' +
        '(storage from STORAGE_PATH / S3_*, as the workers have it; REDIS_URL or REDIS_SENTINELS, and NIXYARD_SYSTEMS, to see builds in flight)',
    )
    .addOption(
      new Option('--grace <duration>', 'keep unreferenced blobs and temporary files written more recently than this (24h, 30m, 90s, 0)')
        .argParser(durationArg)
        .default(DEFAULT_GRACE_SECONDS, '24h'),
    )
    .option('--dry-run', 'print what would be deleted, with sizes, and delete nothing', false)
    .option('--json', 'print the report as JSON')
    .action(async (options: GcCommandOptions) => setExit(await gcCommand(io.env, options, out)));

  program
    .command('fsck')
    .description(
      "re-hash blobs, check every manifest's blobs exist and report temporary files older than the grace period " +
        '(storage from STORAGE_PATH / S3_*); exit 1 on a problem',
    )
    .addOption(new Option('--sample <n>', 're-hash only n blobs chosen at random').argParser(count))
    .addOption(
      new Option('--grace <duration>', 'report temporary files written longer ago than this; younger ones may be writes in progress')
        .argParser(durationArg)
        .default(DEFAULT_GRACE_SECONDS, '24h'),
    )
    .option('--repair', 'remove corrupt blobs, the records that name missing or corrupt blobs (so they are rebuilt) and the stale temporary files', false)
    .option('--json', 'print the report as JSON')
    .action(async (options: FsckCommandOptions) => setExit(await fsckCommand(io.env, options, out)));

  return program;
}

function durationArg(value: string): number {
  const seconds = parseDuration(value);
  if (seconds === undefined) throw new InvalidArgumentError('expected a duration such as 24h, 30m, 90s or 0');
  return seconds;
}

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

async function readList(file: string, io: Io): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new Exit(EXIT.INVALID, [`nixyard: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`]);
  }
}

async function prebuild(file: string, options: PrebuildOptions, io: Io, out: (line?: string) => void): Promise<number> {
  const source = file === '-' ? '<stdin>' : file;
  const list = parseImageList(await readList(file, io));
  const problems = listProblems(list, source);
  if (problems.length > 0) {
    const what = list.invalid.length > 0 ? `${list.invalid.length} invalid image${list.invalid.length === 1 ? '' : 's'}` : 'nothing to submit';
    throw new Exit(EXIT.INVALID, [`nixyard: ${source}: ${what}; nothing was submitted`, ...problems.map((p) => `  ${p}`)]);
  }

  const client = clientFor(options);
  let batch: PrebuildBatch;
  try {
    batch = await client.submit({ images: list.images.map((l) => l.image), ...(options.label ? { label: options.label } : {}) });
  } catch (error) {
    // Map the API's per-index complaints back to lines of the file.
    const lines: readonly ImageLine[] = list.images;
    throw new Exit(exitCodeOf(error), formatError(error, { source, lines }));
  }

  if (!options.wait) {
    out(options.json ? JSON.stringify(batch, null, 2) : batch.id);
    return EXIT.OK;
  }
  if (!options.json) {
    const already = batch.counts.cached;
    out(`batch ${batch.id}: ${batch.total} distinct image${batch.total === 1 ? '' : 's'} from ${list.images.length} line${list.images.length === 1 ? '' : 's'}${already > 0 ? `, ${already} already cached` : ''}`);
  }

  const progress = options.json ? undefined : createProgress(io.stdout, batch);
  try {
    batch = await waitUntilSettled(client, batch, options.pollInterval, progress, io);
  } catch (error) {
    progress?.abort();
    if (error instanceof Interrupted) {
      io.stderr.write(`\nnixyard: stopped watching; batch ${batch.id} goes on (nixyard status ${batch.id}, nixyard cancel ${batch.id})\n`);
    }
    throw error;
  }
  progress?.finish(batch);

  if (options.json) out(JSON.stringify(batch, null, 2));
  else formatOutcome(batch).forEach((line) => out(line));
  return allReady(batch) ? EXIT.OK : EXIT.FAILED;
}

function settled(batch: PrebuildBatch): boolean {
  return batch.state === 'settled' || isSettled(batch.counts);
}

async function waitUntilSettled(client: AdminClient, first: PrebuildBatch, intervalMs: number, progress: Progress | undefined, io: Io): Promise<PrebuildBatch> {
  let batch = first;
  let failures = 0;
  while (!settled(batch)) {
    await sleep(intervalMs, io.signal);
    try {
      batch = await client.get(first.id);
      failures = 0;
    } catch (error) {
      // A restart of the API or a blip is ridden out; anything the API says on purpose is not.
      const transient = error instanceof ConnectionError || (error instanceof ApiError && error.status >= 500);
      if (!transient || ++failures >= POLL_RETRIES) throw error;
      continue;
    }
    progress?.update(batch);
  }
  return batch;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Interrupted());
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Interrupted());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
