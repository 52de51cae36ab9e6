// The storm of bench:storm: every cold pull at once, fired by curl (--parallel, one connection per
// pull), a C client like the warm load's wrk. In a farm the storm's clients are other machines;
// here they share the 2 cores with the API, and Node's http client, which fired the storm before,
// spent as much CPU in the storm's first 300 ms as the API itself did (perf sched: 127 ms against
// 124). curl is started before the storm and waits for its list of pulls on stdin, so starting a
// process is not part of the storm either. Each answer's body is kept, for the error code of a
// pull that was neither built nor refused. `--no-progress-meter`, not `--silent`: curl 7.88 shows
// its parallel progress meter despite `--silent`.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OCI_IMAGE_MANIFEST } from '@nixyard/core';
import { errorCode } from '../test/chaos/api-replicas.js';

export interface BurstAnswer {
  /** The HTTP status; 0 when the pull got no answer. */
  status: number;
  /** The registry error code of an answer other than 200 (`errors[0].code`). */
  code: string | null;
}

export interface Burst {
  /** Pulls every name at once; the answers come in the order of the names. */
  fire(): Promise<BurstAnswer[]>;
  stop(): void;
}

/** curl, started and waiting to pull `names` from `host`; the bodies go to `dir`. */
export function startBurst(host: string, names: readonly string[], dir: string): Burst {
  const child = spawn(
    'curl',
    ['--parallel', '--parallel-immediate', '--parallel-max', String(names.length), '--no-progress-meter', '--write-out', '%{urlnum} %{http_code}\\n', '--config', '-'],
    { cwd: dir, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    // curl exits non-zero when a pull got no answer; that pull's status says so.
    child.once('exit', () => resolve());
  });
  return {
    async fire() {
      // curl reads its whole configuration before its first transfer.
      const config = [`header = "Accept: ${OCI_IMAGE_MANIFEST}"`];
      names.forEach((name, i) => config.push(`url = "http://${host}/v2/${name}/manifests/latest"`, `output = "${i}.body"`));
      child.stdin.end(`${config.join('\n')}\n`);
      await exited;
      const statuses = new Map(out.trim().split('\n').map((line) => line.split(' ').map(Number) as [number, number]));
      return names.map((_, i) => {
        const status = statuses.get(i) ?? 0;
        return { status, code: status === 200 || status === 0 ? null : (errorCode({ body: readFileSync(join(dir, `${i}.body`)) }) ?? null) };
      });
    },
    stop: () => void child.kill(),
  };
}
