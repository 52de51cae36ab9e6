#!/usr/bin/env node
// The `nixyard` executable. It runs the CLI's compiled output (dist/, from `npm run build`) when that
// is current, and otherwise the TypeScript sources through tsx (a development dependency), so that a
// checkout being edited, and the tests, always run what the sources say. Current means what
// scripts/stack.ts's buildProblem checks: each dist/.tsbuildinfo (tsc -b's stamp) of the CLI and of
// @nixyard/core newer than the files of its src/. Paths resolve from this file, so it works from
// `npx nixyard`, node_modules/.bin/nixyard (a symlink to here) and any working directory.
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../', import.meta.url);
const repo = new URL('../../', cli);

/** The newest modification time of the files under `dir` (0 when there is none). */
function newest(dir) {
  let time = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const url = new URL(entry.name + (entry.isDirectory() ? '/' : ''), dir);
    time = Math.max(time, entry.isDirectory() ? newest(url) : statSync(url).mtimeMs);
  }
  return time;
}

/** Whether the workspace's dist/ is at least as new as its src/ (true when there is no src/ to run). */
function current(workspace) {
  const stamp = statSync(new URL(`${workspace}dist/.tsbuildinfo`, repo), { throwIfNoEntry: false });
  const src = statSync(new URL(`${workspace}src/`, repo), { throwIfNoEntry: false });
  if (!src) return true;
  return stamp !== undefined && stamp.mtimeMs >= newest(new URL(`${workspace}src/`, repo));
}

const compiled = statSync(new URL('dist/main.js', cli), { throwIfNoEntry: false }) !== undefined;
if (compiled && current('apps/cli/') && current('packages/core/')) {
  await import(new URL('dist/main.js', cli).href);
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    // No tsx (a production install): the build, however old, is all there is.
    if (!compiled) throw new Error('nixyard: the CLI is not built and tsx is not installed: run `npm run build`');
  }
  if (register) {
    // The repository's tsconfig.json maps @nixyard/core to its sources (its `paths`), whatever the cwd.
    register({ tsconfig: fileURLToPath(new URL('tsconfig.json', repo)) });
    await import('../src/main.ts');
  } else {
    await import(new URL('dist/main.js', cli).href);
  }
}
