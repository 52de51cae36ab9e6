// Asks a git remote which commit a ref names, with `git ls-remote`: no clone, no checkout. The
// ref comes from an image tag, already held to the tag grammar (no leading "-", no glob
// characters), and is passed after "--" as an argument, never through a shell.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const TIMEOUT_MS = 30_000;

export interface RemoteRef {
  name: string; // refs/heads/main, refs/tags/v1, HEAD
  commit: string;
}

export class GitRemote {
  constructor(private readonly url: string) {}

  private async lsRemote(args: string[]): Promise<string> {
    const { stdout } = await run('git', ['ls-remote', ...args], {
      timeout: TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
    });
    return stdout;
  }

  /** The commit of the default branch (what HEAD points at). */
  async defaultBranchHead(): Promise<string | undefined> {
    return parseRefs(await this.lsRemote(['--', this.url, 'HEAD'])).find((r) => r.name === 'HEAD')?.commit;
  }

  /** The commit a branch or tag name stands for: a branch first, then a tag (peeled if annotated). */
  async commitOf(name: string): Promise<string | undefined> {
    const refs = parseRefs(await this.lsRemote(['--', this.url, `refs/heads/${name}`, `refs/tags/${name}`, `refs/tags/${name}^{}`]));
    const byName = new Map(refs.map((r) => [r.name, r.commit]));
    return byName.get(`refs/heads/${name}`) ?? byName.get(`refs/tags/${name}^{}`) ?? byName.get(`refs/tags/${name}`);
  }

  /** Branch and tag names. */
  async names(): Promise<string[]> {
    const refs = parseRefs(await this.lsRemote(['--heads', '--tags', '--', this.url]));
    const names = refs
      .map((r) => r.name.replace(/^refs\/(heads|tags)\//, '').replace(/\^\{\}$/, ''))
      .filter((n) => !n.startsWith('refs/'));
    return [...new Set(names)].sort();
  }
}

function parseRefs(stdout: string): RemoteRef[] {
  return stdout
    .split('\n')
    .map((line) => /^([0-9a-f]{40})\t(\S+)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ commit: m[1]!, name: m[2]! }));
}
