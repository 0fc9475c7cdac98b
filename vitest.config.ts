import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests build and fsck real disk images: give them room, and keep the WASM
    // filesystems in separate processes so one crashed instance cannot poison another.
    // These limits catch a hang, not slowness: beside other work a single build has taken over two
    // minutes on this 2-core machine, so no test sets a tighter one.
    testTimeout: 900_000,
    hookTimeout: 900_000,
    pool: 'forks',
    // Vitest's default is one worker per core but one, so a single worker on a 2-core machine. With
    // two, both cores were busy only 1.4 of 2 on average: the tests also wait on fsync, loop devices
    // and the tools they start. A third worker fills those waits.
    maxWorkers: 3,
    minWorkers: 1,
    globalSetup: ['test/support/reference-setup.ts'],
  },
});
