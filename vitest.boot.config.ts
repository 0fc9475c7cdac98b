import { defineConfig } from 'vitest/config';

/**
 * `npm run test:boot`: the boot-level proof (issue 4), kept out of `npm test` because it builds a
 * Debian arm64 rootfs and boots it under QEMU (minutes, root, qemu-system-aarch64, nfs-ganesha).
 */
export default defineConfig({
  test: {
    include: ['test/boot/**/*.boot.ts'],
    // One boot under TCG takes minutes; the first run also builds the rootfs.
    testTimeout: 25 * 60_000,
    hookTimeout: 40 * 60_000,
    pool: 'forks',
    globalSetup: ['test/support/reference-setup.ts'],
    fileParallelism: false,
  },
});
