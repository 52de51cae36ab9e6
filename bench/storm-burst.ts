// The storm of bench:storm, fired from a process of its own: the 60 cold pulls and their answers
// must not share an event loop with the client that measures warm latency, or the bench would
// measure its own congestion as the registry's. Started before the idle phase (so its start-up
// is not part of the storm), it prints `ready`, waits for `go` on stdin, pulls every name at once
// and prints one JSON line: each pull's status and error code, in the order given.
//
//   node --import tsx bench/storm-burst.ts <host:port> <name>...

import { createInterface } from 'node:readline';
import { errorCode, pullManifest } from '../test/chaos/api-replicas.js';

const [host, ...names] = process.argv.slice(2);
if (!host || names.length === 0) {
  console.error('usage: storm-burst.ts <host:port> <name>...');
  process.exit(2);
}

const lines = createInterface({ input: process.stdin });
console.log('ready');
for await (const line of lines) {
  if (line.trim() !== 'go') continue;
  const answers = await Promise.all(
    names.map((name) =>
      pullManifest(host, name).then(
        (answer) => ({ status: answer.status, code: errorCode(answer) ?? null }),
        (err: Error) => ({ status: 0, code: null, error: err.message }),
      ),
    ),
  );
  console.log(JSON.stringify(answers));
  break;
}
lines.close();
