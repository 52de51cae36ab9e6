// The commands end to end in-process, against a small fake of the admin API on loopback: the
// arguments, the requests, the exit codes and what is printed. The real API is exercised by
// test/e2e/prebuild.test.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PrebuildBatchSchema, type PrebuildImage } from '@nixyard/core';
import { EXIT } from '../src/commands.js';
import { batchOf } from './fixtures.js';
import { runCli } from './run-cli.js';

const TOKEN = 'test-token-0123456789';
const KEY = 'c'.repeat(64);
const DIGEST = `sha256:${'d'.repeat(64)}`;

interface FakeBatch {
  id: string;
  images: PrebuildImage[];
  label?: string;
}

const batches = new Map<string, FakeBatch>();
const requests: string[] = [];
let server: Server;
let url: string;

function answer(batch: FakeBatch) {
  return batchOf(batch.images, { id: batch.id, ...(batch.label ? { label: batch.label } : {}) });
}

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`);
      const send = (status: number, json: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(json));
      };
      const error = (status: number, code: string, message: string, detail: unknown = null) => send(status, { errors: [{ code, message, detail }] });
      const auth = req.headers.authorization;
      if (!auth) return error(401, 'UNAUTHORIZED', 'a bearer token is required');
      if (auth !== `Bearer ${TOKEN}`) return error(403, 'DENIED', 'the bearer token is not valid');
      const id = /^\/api\/v1\/prebuilds\/(.+)$/.exec(req.url ?? '')?.[1];
      if (req.method === 'POST' && req.url === '/api/v1/prebuilds') {
        const { images, label } = JSON.parse(body) as { images: string[]; label?: string };
        const invalid = images.flatMap((image, index) => (image.startsWith('server-rejects') ? [{ index, image, reason: 'no such thing' }] : []));
        if (invalid.length > 0) return error(400, 'BATCH_INVALID', `${invalid.length} of ${images.length} images are invalid; nothing was enqueued`, { invalid });
        const batch: FakeBatch = {
          id: `00000000-0000-4000-8000-${String(batches.size).padStart(12, '0')}`,
          images: [...new Set(images)].map((image) => ({ image, system: image.startsWith('arm64/') ? 'aarch64-linux' : 'x86_64-linux', imageKey: KEY, state: 'queued' })),
          ...(label ? { label } : {}),
        };
        batches.set(batch.id, batch);
        return send(202, answer(batch));
      }
      if (req.method === 'GET' && req.url === '/api/v1/prebuilds') {
        return send(200, { batches: [...batches.values()].reverse().map((b) => ({ ...answer(b), images: undefined })) });
      }
      const batch = id ? batches.get(id) : undefined;
      if (!batch) return error(404, 'BATCH_UNKNOWN', `no prebuild batch ${id}`);
      if (req.method === 'DELETE') {
        const queued = batch.images.filter((i) => i.state === 'queued');
        for (const image of queued) image.state = 'cancelled';
        return send(200, { id: batch.id, cancelled: queued.length });
      }
      // Each read moves the first unfinished image along: queued → building → built (or failed).
      const next = batch.images.find((i) => i.state === 'queued' || i.state === 'building');
      if (next?.state === 'queued') next.state = 'building';
      else if (next && next.image.startsWith('nosuchpkg')) {
        Object.assign(next, { state: 'failed', failure: { code: 'UNKNOWN_PACKAGES', message: 'unknown packages: nosuchpkg', packages: ['nosuchpkg'] } });
      } else if (next) Object.assign(next, { state: 'built', manifestDigest: DIGEST });
      return send(200, answer(batch));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

after(() => {
  server.close();
});

const dir = mkdtempSync(join(tmpdir(), 'nixyard-cli-'));
function listFile(...lines: string[]): string {
  const path = join(dir, `list-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(path, lines.join('\n'));
  return path;
}

async function cli(args: string[], options: { env?: Record<string, string>; stdin?: string } = {}) {
  return runCli(args, { ...options, env: { NIXYARD_URL: url, NIXYARD_ADMIN_TOKEN: TOKEN, ...options.env } });
}

test('prebuild waits for the batch, one progress line per change, exit 0 when all are available', async () => {
  const file = listFile('# two images', 'hello', 'jq:latest # trailing', '');
  const { code, out, err } = await cli(['prebuild', file, '--poll-interval', '10', '--label', 'nightly']);
  assert.equal(err, '');
  assert.equal(code, EXIT.OK);
  const lines = out.trimEnd().split('\n');
  assert.match(lines[0]!, /^batch [0-9a-f-]{36}: 2 distinct images from 2 lines$/);
  assert.match(lines[1]!, /\] 0\/2 done: .*2 queued/);
  assert.match(lines.at(-1)!, /settled: 2\/2 done: 2 built, 0 cached, 0 failed; all images are available$/);
  const progressLines = lines.filter((l) => l.startsWith('['));
  assert.equal(new Set(progressLines).size, progressLines.length, 'no line repeats');
  assert.ok(progressLines.at(-1)!.includes('2/2 done'));
});

test('a failed image: exit 1, listed with its code and message; --json prints only the final batch', async () => {
  const { code, out } = await cli(['prebuild', listFile('hello', 'nosuchpkg'), '--poll-interval', '10']);
  assert.equal(code, EXIT.FAILED);
  assert.match(out, /failed images \(1\):\n  nosuchpkg \[x86_64-linux\]: UNKNOWN_PACKAGES: unknown packages: nosuchpkg\n/);

  const json = await cli(['prebuild', listFile('hello', 'nosuchpkg'), '--json', '--poll-interval', '10']);
  assert.equal(json.code, EXIT.FAILED);
  const batch = PrebuildBatchSchema.parse(JSON.parse(json.out));
  assert.equal(batch.state, 'settled');
  assert.deepEqual([batch.counts.built, batch.counts.failed], [1, 1]);
});

test('the list can come from stdin', async () => {
  const { code, out } = await cli(['prebuild', '-', '--json', '--poll-interval', '10'], { stdin: 'hello\n# c\nshell/jq\n' });
  assert.equal(code, EXIT.OK);
  assert.deepEqual(PrebuildBatchSchema.parse(JSON.parse(out)).images.map((i) => i.image), ['hello', 'shell/jq']);
});

test('bad lines: every one printed with its line number, exit 2, nothing submitted', async () => {
  const before = requests.length;
  const { code, out, err } = await cli(['prebuild', listFile('hello', 'Bad!', '', 'jq@sha256:' + 'a'.repeat(64))]);
  assert.equal(code, EXIT.INVALID);
  assert.equal(out, '');
  assert.match(err, /: 2 invalid images; nothing was submitted\n/);
  assert.match(err, /list-\w+\.txt:2: Bad!: invalid image name/);
  assert.match(err, /list-\w+\.txt:4: jq@sha256:a+: a prebuild names a tag, not a digest/);
  assert.equal(requests.length, before);
  assert.equal((await cli(['prebuild', listFile('# only a comment')])).code, EXIT.INVALID);
  assert.equal((await cli(['prebuild', join(dir, 'missing.txt')])).code, EXIT.INVALID);
});

test('a batch the API refuses as invalid: one line, the entries mapped to lines, exit 2', async () => {
  const { code, err } = await cli(['prebuild', listFile('hello', '# x', 'server-rejects-this')]);
  assert.equal(code, EXIT.INVALID);
  assert.match(err, /^nixyard: 400 BATCH_INVALID: 1 of 2 images are invalid; nothing was enqueued\n  .*list-\w+\.txt:3: server-rejects-this: no such thing\n$/);
});

test('--no-wait prints the id; status and cancel; --json with --no-wait is the 202 answer', async () => {
  const submitted = await cli(['prebuild', listFile('arm64/hello', 'arm64/jq'), '--no-wait']);
  assert.equal(submitted.code, EXIT.OK);
  const id = submitted.out.trim();
  assert.match(id, /^[0-9a-f-]{36}$/);

  const cancelled = await cli(['cancel', id]);
  assert.deepEqual([cancelled.code, cancelled.out], [EXIT.OK, `cancelled 2 queued images of batch ${id}\n`]);
  const status = await cli(['status', id]);
  assert.equal(status.code, EXIT.OK);
  assert.match(status.out, /: settled, created /);
  assert.match(status.out, /cancelled images \(2\):\n  arm64\/hello \[aarch64-linux\]\n  arm64\/jq \[aarch64-linux\]\n/);
  const json = await cli(['status', id, '--json']);
  assert.equal(PrebuildBatchSchema.parse(JSON.parse(json.out)).counts.cancelled, 2);

  const raw = await cli(['prebuild', listFile('hello'), '--no-wait', '--json']);
  assert.equal(PrebuildBatchSchema.parse(JSON.parse(raw.out)).counts.queued, 1);

  const list = await cli(['list']);
  assert.equal(list.code, EXIT.OK);
  assert.ok(list.out.includes(id));
});

test('API errors: 401 without a token, 403 with a wrong one, 404 for an unknown batch, each one line, exit 3', async () => {
  const file = listFile('hello');
  const missing = await cli(['prebuild', file], { env: { NIXYARD_ADMIN_TOKEN: '' } });
  assert.equal(missing.code, EXIT.ERROR);
  assert.equal(missing.err, 'nixyard: 401 UNAUTHORIZED: a bearer token is required\n  (set NIXYARD_ADMIN_TOKEN or pass --token)\n');
  const wrong = await cli(['prebuild', file, '--token', 'not-the-token-at-all']);
  assert.deepEqual([wrong.code, wrong.err], [EXIT.ERROR, 'nixyard: 403 DENIED: the bearer token is not valid\n']);
  const unknown = await cli(['status', '00000000-0000-4000-8000-999999999999']);
  assert.equal(unknown.code, EXIT.ERROR);
  assert.match(unknown.err, /^nixyard: 404 BATCH_UNKNOWN: no prebuild batch /);
});

test('a connection failure names the URL that failed', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const address = closed.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise((resolve) => closed.close(resolve));
  const { code, err } = await cli(['status', 'some-id', '--url', `127.0.0.1:${port}`]);
  assert.equal(code, EXIT.ERROR);
  assert.equal(err, `nixyard: cannot reach http://127.0.0.1:${port}/api/v1/prebuilds/some-id: connect ECONNREFUSED 127.0.0.1:${port}\n`);
});

test('usage mistakes exit 2 with a hint; help exits 0', async () => {
  const bad = await cli(['prebuild']);
  assert.equal(bad.code, EXIT.INVALID);
  assert.match(bad.err, /missing required argument 'file'/);
  assert.equal((await cli(['prebuild', 'x', '--poll-interval', 'soon'])).code, EXIT.INVALID);
  assert.equal((await cli(['frobnicate'])).code, EXIT.INVALID);
  const help = await cli(['prebuild', '--help']);
  assert.equal(help.code, EXIT.OK);
  assert.match(help.out, /--no-wait/);
});
