import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests build and fsck real disk images: give them room, and keep the WASM
    // filesystems in separate processes so one crashed instance cannot poison another.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    globalSetup: ['test/support/reference-setup.ts'],
  },
});
