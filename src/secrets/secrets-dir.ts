/**
 * The build's secrets directory, `<out>/secrets` (0700): SSH host keys in `ssh/`
 * (ssh-host-keys.ts), the Docker API's CA and certificates in `tls/` (tls.ts). Everything in it
 * is made on first use and reused by later builds, so a reflashed device keeps the identity the
 * host already trusts. Rotating starts from an empty directory that replaces the old one only
 * when the build succeeds: a failed rotation leaves the old secrets, image and host kit matching.
 */
import { secretsDirOf } from '../output/out-layout.js';
import { type PendingDir, pendingDir } from '../output/pending-dir.js';

export async function openSecrets(outDir: string, options: { rotate: boolean }): Promise<PendingDir> {
  const path = secretsDirOf(outDir);
  if (options.rotate) return pendingDir(path, 0o700);
  // Created on first use, by whichever module needs it first (privateDir).
  return { path, commit: async () => {}, discard: async () => {}, settle: async () => {} };
}
