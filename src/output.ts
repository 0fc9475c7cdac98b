import { access, constants, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { $ } from 'zx';
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
  /** A temp path in --out for another artifact (e.g. `<name>.img.xz`), renamed by commit(). */
  artifact(fileName: string): string;
  /**
   * Renames everything into place and writes `<name>.img.sha256`; with more artifacts
   * than the image, also a SHA256SUMS covering all of them.
   */
  commit(sha256s: Record<string, string>): Promise<{ image: string; checksumFiles: string[] }>;
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
  const artifacts = new Map<string, string>([[basename(finalPath), tempPath]]);
  const discard = async () => {
    for (const temp of artifacts.values()) {
      pending.delete(temp);
      await rm(temp, { force: true });
    }
  };
  return {
    tempPath,
    finalPath,
    discard,
    artifact(fileName) {
      const temp = join(outDir, `.${fileName}.${process.pid}.tmp`);
      artifacts.set(fileName, temp);
      pending.add(temp);
      return temp;
    },
    async commit(sha256s) {
      const sum = (file: string) => `${sha256s[file]}  ${file}\n`;
      const image = basename(finalPath);
      const checksums = new Map([[`${image}.sha256`, sum(image)]]);
      if (artifacts.size > 1) checksums.set('SHA256SUMS', [...artifacts.keys()].sort().map(sum).join(''));
      for (const [file, text] of checksums) {
        const temp = join(outDir, `.${file}.${process.pid}.tmp`);
        pending.add(temp);
        await writeFile(temp, text);
        artifacts.set(file, temp);
      }
      // The image last: a <name>.img present means the whole set is.
      for (const [file, temp] of [...artifacts].filter(([file]) => file !== image)) await rename(temp, join(outDir, file));
      await rename(tempPath, finalPath);
      for (const temp of artifacts.values()) pending.delete(temp);
      return { image: finalPath, checksumFiles: [...checksums.keys()].map((file) => join(outDir, file)) };
    },
  };
}
