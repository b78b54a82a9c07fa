import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['*/test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests bind real sockets and spawn real processes: two at once suits a 2-core machine.
    maxWorkers: 2,
  },
});
