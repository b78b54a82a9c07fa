/** The entry point of a worker process, forked by cluster/primary.ts: serve until drained, then leave. */
import { runWorker } from './worker.js';

process.exitCode = await runWorker();
if (process.connected) process.disconnect();
