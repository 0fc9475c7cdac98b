import { posix } from 'node:path';
import { applyTextChange } from '../formats/text-changes.js';
import type { PartitionFs } from '../image/partition-fs.js';
import { progressBar } from '../log.js';
import { type OpenStream, type Operation, type Partition, unknownOperation } from './operations.js';
import { resolveDir, resolveParent } from './real-paths.js';

export type Partitions = Record<Partition, PartitionFs>;

export interface ApplyStats {
  operations: number;
  bytesWritten: number;
}

async function* counted(data: AsyncIterable<Uint8Array>, bar: { advance(bytes: number): void }): AsyncGenerator<Uint8Array> {
  for await (const chunk of data) {
    bar.advance(chunk.length);
    yield chunk;
  }
}

/** Refuses paths that are not absolute or that climb out with "..". */
function checkPath(path: string): string {
  if (!path.startsWith('/') || path.split('/').includes('..')) {
    throw new Error(`operation path must be absolute without "..": ${path}`);
  }
  return posix.normalize(path);
}

const readlinkOf = (fs: PartitionFs) => async (path: string) =>
  (await fs.lstat(path))?.type === 'symlink' ? fs.readlink(path) : undefined;

/**
 * Where an operation's path is on the partition: its directories followed through symlinks inside
 * the root file system (a stock /etc or /usr/local/bin may be a link), its own name kept, or
 * followed too for an operation on a directory. FAT has no symlinks.
 */
async function placeOf(fs: PartitionFs, path: string, isDir = false): Promise<string> {
  const checked = checkPath(path);
  if (fs.kind !== 'ext4') return checked;
  return isDir ? resolveDir(readlinkOf(fs), checked) : resolveParent(readlinkOf(fs), checked);
}

/**
 * Performs operations in order on the open partitions. It is the only code that writes
 * the image, and it knows nothing of what an operation is for.
 */
export async function applyOperations(
  parts: Partitions,
  operations: Operation[],
  options: { stats?: ApplyStats; secrets?: ReadonlyMap<string, Buffer>; openStream?: OpenStream } = {},
): Promise<ApplyStats> {
  const stats = options.stats ?? { operations: 0, bytesWritten: 0 };
  for (const op of operations) {
    const fs = parts[op.on];
    switch (op.op) {
      case 'mkdir':
        await fs.mkdirp(await placeOf(fs, op.path, true), op);
        break;
      case 'write': {
        const path = await placeOf(fs, op.path);
        await fs.mkdirp(posix.dirname(path));
        await fs.writeFile(path, op.content, op);
        stats.bytesWritten += Buffer.byteLength(op.content);
        break;
      }
      case 'edit': {
        const path = await placeOf(fs, op.path);
        const before = (await fs.readFile(path)).toString('utf8');
        const after = applyTextChange(before, op.change);
        // Unchanged files are not rewritten: a rebuild of a patched image touches nothing.
        if (after !== before) {
          const stat = await fs.lstat(path);
          await fs.writeFile(path, after, stat ? { mode: stat.mode, uid: stat.uid, gid: stat.gid } : {});
          stats.bytesWritten += Buffer.byteLength(after);
        }
        break;
      }
      case 'secret': {
        const content = options.secrets?.get(op.secret);
        if (content === undefined) throw new Error(`no secret ${op.secret} for ${op.on}:${op.path}: the build's secrets stage made none`);
        const path = await placeOf(fs, op.path);
        await fs.mkdirp(posix.dirname(path));
        await fs.writeFile(path, content, op);
        stats.bytesWritten += content.length;
        break;
      }
      case 'symlink': {
        const path = await placeOf(fs, op.path);
        const existing = await fs.lstat(path);
        if (existing?.type === 'symlink' && (await fs.readlink(path)) === op.target) break;
        await fs.mkdirp(posix.dirname(path));
        await fs.symlink(op.target, path, op);
        break;
      }
      case 'remove':
        await fs.remove(await placeOf(fs, op.path));
        break;
      case 'stream': {
        const dir = await placeOf(fs, op.dir, true);
        // At the partition root the prefix is "/" itself, not "//".
        const inside = dir === '/' ? '/' : `${dir}/`;
        await fs.mkdirp(dir);
        const bar = op.bytes ? progressBar(`install ${op.on}:${dir}`, op.bytes) : undefined;
        if (!options.openStream) throw new Error(`no stream opener for ${op.on}:${op.dir}: pass openStream to apply a plan with streams`);
        for await (const entry of options.openStream(op.source)) {
          const path = checkPath(posix.join(dir, entry.path));
          if (!path.startsWith(inside)) throw new Error(`archive entry escapes ${dir}: ${entry.path}`);
          if (entry.type === 'dir') {
            await fs.mkdirp(path, entry);
          } else if (entry.type === 'symlink') {
            await fs.mkdirp(posix.dirname(path));
            await fs.symlink(entry.target, path, entry);
          } else {
            await fs.mkdirp(posix.dirname(path));
            stats.bytesWritten += await fs.writeStream(path, bar ? counted(entry.data, bar) : entry.data, entry);
          }
        }
        bar?.finish();
        break;
      }
      default:
        unknownOperation(op);
    }
    stats.operations += 1;
  }
  return stats;
}
