import { posix } from 'node:path';
import { describeTextChange, type TextChange } from '../formats/text-changes.js';
import type { FileMeta } from '../image/partition-fs.js';

/**
 * The plain operations a step asks for (virt-customize style). Steps return them, the
 * applier performs them, and `--dry-run` prints them; nothing else writes the image.
 */
export type Partition = 'boot' | 'rootfs';

export type Operation =
  | ({ op: 'mkdir'; on: Partition; path: string } & FileMeta)
  | ({ op: 'write'; on: Partition; path: string; content: string | Buffer } & FileMeta)
  /** A file already there, changed as named data (formats/text-changes.ts), unchanged files not rewritten. */
  | { op: 'edit'; on: Partition; path: string; change: TextChange }
  /**
   * A file holding one of the device's secrets (a key, a certificate) by name: the build's secrets
   * stage makes them before the patch, so a plan names them without making any.
   */
  | ({ op: 'secret'; on: Partition; path: string; secret: string } & FileMeta)
  | ({ op: 'symlink'; on: 'rootfs'; path: string; target: string } & FileMeta)
  | { op: 'remove'; on: Partition; path: string }
  | {
      op: 'stream';
      on: Partition;
      /** Where the files land; the source's entries are paths relative to it. */
      dir: string;
      /** What is read, as data: opened only when the operation is applied (openStream). */
      source: StreamSource;
      /** The files' total size when known: the applier shows a progress bar. */
      bytes?: number;
    };

/**
 * Where a stream's files come from, on the build host: read while they are written, never whole
 * in memory. The applier's caller opens them (artifacts/stream-sources.ts), so the plan holds only
 * what it reads.
 */
export type StreamSource =
  /** Docker's static bundle (a verified .tgz): the binaries it installs, by name. */
  | { from: 'docker-bundle'; path: string; sha256: string; origin: string; binaries: string[] }
  /** One file of the repository's overlays, too large to hold as a `write`'s content. */
  | ({ from: 'host-file'; path: string; name: string; size: number } & FileMeta);

/** Opens a stream's source as entries: the one place that reads the host's files while applying. */
export type OpenStream = (source: StreamSource) => AsyncIterable<StreamEntry>;

/** What a stream reads, for the plan. */
function describeSource(source: StreamSource): string {
  return source.from === 'docker-bundle'
    ? `${source.binaries.join(', ')} from ${source.origin}`
    : `${source.name} (${source.size} bytes) from ${source.path}`;
}

/** One file of a streamed archive (e.g. a tar entry), written without a temp copy. */
export type StreamEntry =
  | ({ type: 'file'; path: string; data: AsyncIterable<Uint8Array> } & FileMeta)
  | ({ type: 'dir'; path: string } & FileMeta)
  | ({ type: 'symlink'; path: string; target: string } & FileMeta);

const octal = (mode?: number) => (mode === undefined ? '' : ` mode=${mode.toString(8).padStart(4, '0')}`);
const owner = (m: FileMeta) => (m.uid === undefined && m.gid === undefined ? '' : ` owner=${m.uid ?? 0}:${m.gid ?? 0}`);

/** One line per operation, for --dry-run and the build log. */
export function describeOperation(op: Operation): string {
  const where = `${op.on}:${'path' in op ? op.path : op.dir}`;
  switch (op.op) {
    case 'mkdir':
      return `mkdir   ${where}${octal(op.mode)}${owner(op)}`;
    case 'write':
      return `write   ${where} (${Buffer.byteLength(op.content)} bytes)${octal(op.mode)}${owner(op)}`;
    case 'edit':
      return `edit    ${where}: ${describeTextChange(op.change)}`;
    case 'secret':
      return `secret  ${where} <- ${op.secret}${octal(op.mode)}${owner(op)}`;
    case 'symlink':
      return `symlink ${where} -> ${op.target}`;
    case 'remove':
      return `remove  ${where}`;
    case 'stream':
      return `stream  ${where}: ${describeSource(op.source)}`;
    default:
      return unknownOperation(op);
  }
}

/**
 * For the `default` of a switch over `op.op`: tsc fails where a kind has no case (op is not
 * `never`), and an operation of a kind nobody knows stops the build instead of passing unseen.
 */
export function unknownOperation(op: never): never {
  throw new Error(`unknown operation: ${(op as { op?: unknown }).op}`);
}

/** A root-owned file in the rootfs, its directory created 0755 root:root if missing. */
export function rootfsFile(path: string, content: string | Buffer, mode = 0o644): Operation[] {
  return [
    { op: 'mkdir', on: 'rootfs', path: posix.dirname(path), mode: 0o755, uid: 0, gid: 0 },
    { op: 'write', on: 'rootfs', path, content, mode, uid: 0, gid: 0 },
  ];
}
