#!/usr/bin/env node
// The `nixyard` executable: registers tsx's loader in this process (as the repo runs all of its
// TypeScript) and runs the CLI's source. Paths resolve from this file, so it works from
// `npx nixyard`, node_modules/.bin/nixyard (a symlink to here) and any working directory.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
