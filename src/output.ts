import { access, constants, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { $ } from 'zx';
import { sha256File } from './checksum.js';
import { UserError } from './errors.js';

/**
 * The output image is built as a hidden temp file in --out and renamed into place only
 * when it is complete, so a failed or interrupted build never leaves a <name>.img behind.
 */
export interface PendingOutput {
  /** The temp image being patched. */
  tempPath: string;
  /** Where it will land. */
  finalPath: string;
  commit(): Promise<{ image: string; checksumFile: string; sha256: string }>;
  discard(): Promise<void>;
}

const pending = new Set<string>();
let handlersInstalled = false;

// Interrupted builds remove their temp files; the signal's usual exit status follows.
function installInterruptCleanup(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const path of pending) void rm(path, { force: true });
      pending.clear();
      process.stderr.write(`\ninterrupted: no image written\n`);
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

export async function prepareOutputDir(outDir: string): Promise<void> {
  try {
    await mkdir(outDir, { recursive: true });
    await access(outDir, constants.W_OK);
  } catch (error) {
    throw new UserError(`cannot write to the output directory ${outDir} (${(error as NodeJS.ErrnoException).code}): pass a writable directory with --out`);
  }
}

/** Copies the source image into a temp file in outDir, keeping holes as holes. */
export async function startOutput(sourcePath: string, outDir: string, name: string): Promise<PendingOutput> {
  await prepareOutputDir(outDir);
  installInterruptCleanup();
  const finalPath = join(outDir, `${name}.img`);
  const tempPath = join(outDir, `.${name}.img.${process.pid}.tmp`);
  pending.add(tempPath);
  try {
    // cp skips holes with SEEK_DATA/SEEK_HOLE (and reflinks where the file system can),
    // so a mostly-empty 4 GiB image costs what its data costs.
    await $({ quiet: true })`cp --sparse=always --reflink=auto ${sourcePath} ${tempPath}`;
  } catch (error) {
    pending.delete(tempPath);
    await rm(tempPath, { force: true });
    const detail = String((error as { stderr?: string }).stderr ?? error).trim().split('\n').pop();
    throw new UserError(`cannot copy ${sourcePath} to ${outDir}: ${detail}; check free space in the output directory`);
  }
  const discard = async () => {
    pending.delete(tempPath);
    await rm(tempPath, { force: true });
  };
  return {
    tempPath,
    finalPath,
    discard,
    async commit() {
      const sha256 = await sha256File(tempPath);
      const checksumFile = `${finalPath}.sha256`;
      const checksumTemp = `${checksumFile}.${process.pid}.tmp`;
      pending.add(checksumTemp);
      try {
        await writeFile(checksumTemp, `${sha256}  ${basename(finalPath)}\n`);
        await rename(tempPath, finalPath);
        await rename(checksumTemp, checksumFile);
      } finally {
        pending.delete(checksumTemp);
        pending.delete(tempPath);
        await rm(checksumTemp, { force: true });
      }
      return { image: finalPath, checksumFile, sha256 };
    },
  };
}
