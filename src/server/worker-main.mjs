// Entry point of an inference process (forked by inference-pool.ts): TypeScript sources run through tsx.
import { register } from 'tsx/esm/api';

register();
const { serveParent } = await import('./inference-worker.ts');
serveParent();
