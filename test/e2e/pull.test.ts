// The pull path on filesystem storage (see pull-suite.ts).
import { pullSuite } from './pull-suite.js';

pullSuite('filesystem storage', async () => ({ env: {}, cleanup: async () => {} }));
