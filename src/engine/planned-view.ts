/**
 * The image as the operations planned so far would leave it, without writing anything: a whole
 * build is planned before any of it is applied (so the plan that checks the space is the plan
 * applied), and each step still sees what the steps before it change. Paths are placed as the
 * applier places them (directories through symlinks); FAT names match case-insensitively.
 */
import { posix } from 'node:path';
import { applyTextChange } from '../formats/text-changes.js';
import type { EntryStat } from '../image/partition-fs.js';
import { type Operation, type Partition, type StreamSource, unknownOperation } from './operations.js';
import { resolveDir, resolveParent } from './real-paths.js';
import type { ImageView } from './step.js';

type Planned =
  /** `content` undefined: written while applying (a secret, a streamed file), not readable while planning. */
  | { type: 'file'; name: string; stat: EntryStat; content?: Buffer }
  | { type: 'dir'; name: string; stat: EntryStat }
  | { type: 'symlink'; name: string; stat: EntryStat; target: string }
  | { type: 'gone'; name: string };

const ROOT_OWNED = { uid: 0, gid: 0 };

/** The files a stream writes, by name under its directory. */
function streamedNames(source: StreamSource): string[] {
  return source.from === 'docker-bundle' ? source.binaries : [source.name];
}

export class PlannedView implements ImageView {
  readonly layout: ImageView['layout'];
  private readonly entries = new Map<string, Planned>();

  constructor(private readonly base: ImageView) {
    this.layout = base.layout;
  }

  private key(on: Partition, path: string): string {
    return `${on}:${on === 'boot' ? path.toLowerCase() : path}`;
  }

  /** Where the applier would put `path` (its directories through symlinks on the root file system). */
  private async place(on: Partition, path: string, isDir = false): Promise<string> {
    const normal = posix.normalize(path);
    if (on !== 'rootfs' || this.entries.size === 0) return normal;
    const readlink = (p: string) => this.readlink(on, p);
    return isDir ? resolveDir(readlink, normal) : resolveParent(readlink, normal);
  }

  /** The planned entry at a placed path, or `gone` under a removed directory; undefined: as the image has it. */
  private find(on: Partition, placed: string): Planned | undefined {
    const own = this.entries.get(this.key(on, placed));
    if (own) return own;
    for (let dir = posix.dirname(placed); dir !== '/'; dir = posix.dirname(dir)) {
      const above = this.entries.get(this.key(on, dir));
      if (above && above.type !== 'dir') return { type: 'gone', name: posix.basename(placed) };
    }
    return undefined;
  }

  async lstat(on: Partition, path: string): Promise<EntryStat | undefined> {
    if (this.entries.size === 0) return this.base.lstat(on, path);
    const planned = this.find(on, await this.place(on, path));
    if (!planned) return this.base.lstat(on, path);
    return planned.type === 'gone' ? undefined : planned.stat;
  }

  async read(on: Partition, path: string): Promise<Buffer | undefined> {
    if (this.entries.size === 0) return this.base.read(on, path);
    const planned = this.find(on, await this.place(on, path));
    if (!planned) return this.base.read(on, path);
    if (planned.type !== 'file') return undefined;
    if (planned.content === undefined) throw new Error(`${on}:${path} is written while the plan is applied; a plan cannot read it`);
    return planned.content;
  }

  async readText(on: Partition, path: string): Promise<string | undefined> {
    return (await this.read(on, path))?.toString('utf8');
  }

  async readlink(on: Partition, path: string): Promise<string | undefined> {
    if (this.entries.size === 0) return this.base.readlink(on, path);
    const planned = this.find(on, await this.place(on, path));
    if (!planned) return this.base.readlink(on, path);
    return planned.type === 'symlink' ? planned.target : undefined;
  }

  async readdir(on: Partition, path: string): Promise<string[]> {
    if (this.entries.size === 0) return this.base.readdir(on, path);
    const dir = await this.place(on, path, true);
    const planned = this.find(on, dir);
    if (planned && planned.type !== 'dir') return [];
    const names = new Map((await this.base.readdir(on, path)).map((name) => [on === 'boot' ? name.toLowerCase() : name, name]));
    const prefix = this.key(on, dir === '/' ? '/' : `${dir}/`);
    for (const [key, entry] of this.entries) {
      if (!key.startsWith(prefix) || key.slice(prefix.length).includes('/')) continue;
      const name = key.slice(prefix.length);
      if (entry.type === 'gone') names.delete(name);
      else names.set(name, entry.name);
    }
    return [...names.values()];
  }

  /** Takes in one planned operation, as the applier will perform it. */
  async record(op: Operation): Promise<void> {
    switch (op.op) {
      case 'mkdir':
        return this.mkdirp(op.on, await this.place(op.on, op.path, true), op);
      case 'write':
        return this.putFile(op.on, await this.place(op.on, op.path), Buffer.from(op.content), op);
      case 'secret':
        return this.putFile(op.on, await this.place(op.on, op.path), undefined, op);
      case 'edit': {
        const placed = await this.place(op.on, op.path);
        const before = await this.readText(op.on, placed);
        // The applier refuses a missing file; the plan leaves that to it.
        if (before === undefined) return;
        const stat = await this.lstat(op.on, placed);
        this.set(op.on, placed, {
          type: 'file',
          name: posix.basename(placed),
          stat: stat!,
          content: Buffer.from(applyTextChange(before, op.change)),
        });
        return;
      }
      case 'symlink': {
        const placed = await this.place(op.on, op.path);
        await this.mkdirp(op.on, posix.dirname(placed));
        const stat = { type: 'symlink' as const, mode: 0o777, uid: op.uid ?? 0, gid: op.gid ?? 0, size: op.target.length };
        this.set(op.on, placed, { type: 'symlink', name: posix.basename(placed), stat, target: op.target });
        return;
      }
      case 'remove': {
        const placed = await this.place(op.on, op.path);
        const below = this.key(op.on, `${placed}/`);
        for (const key of [...this.entries.keys()]) if (key.startsWith(below)) this.entries.delete(key);
        this.set(op.on, placed, { type: 'gone', name: posix.basename(placed) });
        return;
      }
      case 'stream': {
        const dir = await this.place(op.on, op.dir, true);
        await this.mkdirp(op.on, dir);
        // The bundle's binaries are installed 0755 root:root; an overlay file carries its own.
        const meta = op.source.from === 'docker-bundle' ? { mode: 0o755, ...ROOT_OWNED } : op.source;
        for (const name of streamedNames(op.source)) await this.putFile(op.on, posix.join(dir, name), undefined, meta);
        return;
      }
      default:
        unknownOperation(op);
    }
  }

  private set(on: Partition, placed: string, entry: Planned): void {
    this.entries.set(this.key(on, placed), entry);
  }

  private async putFile(
    on: Partition,
    placed: string,
    content: Buffer | undefined,
    meta: { mode?: number; uid?: number; gid?: number },
  ): Promise<void> {
    await this.mkdirp(on, posix.dirname(placed));
    const old = await this.lstat(on, placed);
    const stat: EntryStat = {
      type: 'file',
      mode: meta.mode ?? old?.mode ?? 0o644,
      uid: meta.uid ?? old?.uid ?? 0,
      gid: meta.gid ?? old?.gid ?? 0,
      size: content?.length ?? 0,
    };
    this.set(on, placed, { type: 'file', name: posix.basename(placed), stat, content });
  }

  private async mkdirp(on: Partition, placed: string, meta: { mode?: number; uid?: number; gid?: number } = {}): Promise<void> {
    if (placed === '/') return;
    const existing = await this.lstat(on, placed);
    if (existing?.type === 'dir') {
      if (meta.mode === undefined && meta.uid === undefined && meta.gid === undefined) return;
      const stat = { ...existing, mode: meta.mode ?? existing.mode, uid: meta.uid ?? existing.uid, gid: meta.gid ?? existing.gid };
      this.set(on, placed, { type: 'dir', name: posix.basename(placed), stat });
      return;
    }
    await this.mkdirp(on, posix.dirname(placed));
    const stat: EntryStat = {
      type: 'dir',
      mode: meta.mode ?? 0o755,
      uid: meta.uid ?? ROOT_OWNED.uid,
      gid: meta.gid ?? ROOT_OWNED.gid,
      size: 0,
    };
    this.set(on, placed, { type: 'dir', name: posix.basename(placed), stat });
  }
}
