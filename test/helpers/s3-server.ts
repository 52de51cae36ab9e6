// A real S3-protocol server on loopback for tests: s3rver (a small S3 implementation over a
// directory) on a free port, with one bucket created. It runs in a child process of its own, not
// in the test process: end-to-end tests block their event loop in execFileSync (skopeo), which
// must not stop the server that skopeo is redirected to, and the storage tests measure the test
// process's memory, which should be the backend's alone.
//
// s3rver accepts the access key and secret `S3RVER`/`S3RVER`. Pass `env` to processes that should
// use it (the API and workers read those through the AWS SDK's standard credential chain).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface S3Server {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  /** The bucket created at start. */
  bucket: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Nixyard's variables for a process that should store into this server's bucket. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export interface S3ServerOptions {
  /** Default: `nixyard-test`. Must be DNS-valid (3+ characters). */
  bucket?: string;
}

const ACCESS_KEY = 'S3RVER';

// The child: starts s3rver from the given module path and prints its address as one JSON line.
// It exits when its stdin closes, so it never outlives the test process, even one killed hard.
const CHILD = `
const S3rver = require(process.env.S3RVER_MODULE);
// s3rver deletes a key's parent directory once it is empty, racing a concurrent PUT under the same
// prefix (writers' staging objects under tmp/): the PUT's file open then fails with ENOENT in a
// stream nobody listens on, and the whole server dies. S3 has no directories; keep them.
const path = require('node:path');
const fs = require('node:fs/promises');
const Store = require(path.join(path.dirname(process.env.S3RVER_MODULE), 'stores', 'filesystem.js'));
Store.prototype.deleteObject = async function deleteObject(bucket, key) {
  const files = ['object', 'object.md5', 'metadata.json'].map((kind) => this.getResourcePath(bucket, key, kind));
  await Promise.all(files.map((file) => fs.unlink(file).catch((err) => { if (err.code !== 'ENOENT') throw err; })));
};
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory: process.env.S3RVER_DIR,
  configureBuckets: [{ name: process.env.S3RVER_BUCKET }],
});
server.run().then(
  (address) => process.stdout.write(JSON.stringify({ port: address.port }) + '\\n'),
  (error) => { process.stderr.write(String(error && error.stack || error) + '\\n'); process.exit(1); },
);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
`;

export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const bucket = options.bucket ?? 'nixyard-test';
  const directory = mkdtempSync(join(tmpdir(), 'nixyard-s3rver-'));
  // s3rver encrypts its ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its
  // legacy provider: without it every truncated listing is a 500.
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', CHILD], {
    env: {
      ...process.env,
      S3RVER_MODULE: createRequire(import.meta.url).resolve('s3rver'),
      S3RVER_DIR: directory,
      S3RVER_BUCKET: bucket,
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(directory, { recursive: true, force: true });
  };

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      const timer = setTimeout(() => reject(new Error('s3rver did not start within 30 s')), 30_000);
      lines.once('line', (line) => {
        clearTimeout(timer);
        lines.close();
        const parsed = JSON.parse(line) as { port?: unknown };
        if (typeof parsed.port === 'number') resolve(parsed.port);
        else reject(new Error(`s3rver said ${line}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited at start (${signal ?? code})`));
      });
    });
  } catch (error) {
    await stop();
    throw error;
  }

  const endpoint = `http://127.0.0.1:${port}`;
  const region = 'us-east-1';
  return {
    endpoint,
    bucket,
    region,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: ACCESS_KEY },
    env: {
      NIXERY_STORAGE_BACKEND: 's3',
      S3_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: ACCESS_KEY,
    },
    stop,
  };
}
