// BullMQ's classes for the API, loaded with `require`. bullmq is CommonJS without "exports", and an
// ESM `import` of such a package makes Node scan every file it re-exports (about 170 here) for
// export names with cjs-module-lexer before running them: about a third of what loading BullMQ
// costs, paid on every start of the API. `require` runs the same files once. It is the very module
// an `import` would give (tests that import 'bullmq' get the same classes); types come from
// `import type { ... } from 'bullmq'` as usual.

import { createRequire } from 'node:module';

export const bullmq = createRequire(import.meta.url)('bullmq') as typeof import('bullmq');
