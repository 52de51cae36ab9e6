// A containerd daemon of a test's own, as a real client for pulls: its own root, state and socket
// in a directory of the test's, and only what a pull needs (no CRI plugin, which would set up
// networking and watch for pods). Used by the container-engines and auth end-to-end tests.

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Containerd {
  /** The socket, for `ctr --address`. */
  address: string;
  stop(): Promise<void>;
}

/** Starts containerd in `dir`; resolves once `ctr version` answers (at most 20 s). */
export async function startContainerd(dir: string): Promise<Containerd> {
  mkdirSync(dir, { recursive: true });
  const address = join(dir, 'containerd.sock');
  writeFileSync(join(dir, 'config.toml'), 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n');
  const daemon = spawn('containerd', ['--config', join(dir, 'config.toml'), '--root', join(dir, 'root'), '--state', join(dir, 'state'), '--address', address], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  daemon.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((done) => daemon.once('exit', () => done()));
  const stop = async () => {
    if (daemon.exitCode !== null || daemon.signalCode !== null) return;
    daemon.kill('SIGTERM');
    const timer = setTimeout(() => daemon.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  for (let deadline = Date.now() + 20_000; ; ) {
    if (daemon.exitCode !== null) throw new Error(`containerd exited: ${log}`);
    if (spawnSync('ctr', ['--address', address, 'version'], { stdio: 'ignore', timeout: 5000 }).status === 0) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`containerd did not answer within 20 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { address, stop };
}
