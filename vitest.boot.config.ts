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
    // The cold rootfs build alone took over 54 min once on 2 cores with a load average of 13-18
    // (test/boot/README.md); a timed-out hook kills mmdebstrap and loses it all.
    hookTimeout: 90 * 60_000,
    pool: 'forks',
    globalSetup: ['test/support/reference-setup.ts'],
    fileParallelism: false,
  },
});
