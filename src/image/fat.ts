import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import * as FatFs from 'js-fatfs';
import { withPath } from '../errors.js';
import type { ImageLayout } from './layout.js';
import {
  type EntryStat,
  type FileMeta,
  type PartitionFs,
  PartitionFsBase,
  PartitionFsError,
  rechunk,
  type ScopeOptions,
  toAsync,
} from './partition-fs.js';

/*
 * The FAT boot partition through ChaN's FatFs compiled to WASM (`js-fatfs`). FatFs keeps
 * both FAT copies in step and passes fsck.fat, unlike the older `fatfs` npm package.
 * Its disk callbacks are synchronous, so the partition is read and written with the
 * synchronous fs calls on one descriptor; the boot partition is small, so this is cheap.
 * FAT has no owners, modes or symlinks: meta is ignored and symlink() refuses.
 */

const SECTOR = 512;
const IO_CHUNK = 1024 * 1024;

const RESULT_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(FatFs)
    .filter(([name, value]) => name.startsWith('FR_') && typeof value === 'number')
    .map(([name, value]) => [value as number, name]),
);

export class FatError extends PartitionFsError {
  constructor(op: string, path: string, code: string) {
    super('FAT', op, path, code);
    this.name = 'FatError';
  }
}

class PartitionDiskIO implements FatFs.DiskIO {
  /** The first write to the image that failed (a full disk, say): FatFs is told only RES_ERROR. */
  writeFailure: unknown;

  constructor(
    private readonly fd: number,
    private readonly offset: number,
    private readonly sectors: number,
    private readonly writable: boolean,
  ) {}
  initialize() {
    return 0;
  }
  status() {
    return this.writable ? 0 : FatFs.STA_PROTECT;
  }
  read(ff: FatFs.FatFs, _pdrv: number, buff: number, sector: number, count: number) {
    const length = count * SECTOR;
    const got = readSync(this.fd, ff.HEAPU8, buff, length, this.offset + sector * SECTOR);
    return got === length ? FatFs.RES_OK : FatFs.RES_ERROR;
  }
  write(ff: FatFs.FatFs, _pdrv: number, buff: number, sector: number, count: number) {
    if (!this.writable) return FatFs.RES_WRPRT;
    const length = count * SECTOR;
    try {
      const put = writeSync(this.fd, ff.HEAPU8, buff, length, this.offset + sector * SECTOR);
      return put === length ? FatFs.RES_OK : FatFs.RES_ERROR;
    } catch (error) {
      this.writeFailure ??= error;
      return FatFs.RES_ERROR;
    }
  }
  ioctl(ff: FatFs.FatFs, _pdrv: number, cmd: number, buff: number) {
    switch (cmd) {
      case FatFs.CTRL_SYNC:
        return FatFs.RES_OK;
      case FatFs.GET_SECTOR_COUNT:
        ff.setValue(buff, this.sectors, 'i32');
        return FatFs.RES_OK;
      case FatFs.GET_SECTOR_SIZE:
        ff.setValue(buff, SECTOR, 'i16');
        return FatFs.RES_OK;
      case FatFs.GET_BLOCK_SIZE:
        ff.setValue(buff, 1, 'i32');
        return FatFs.RES_OK;
      default:
        return FatFs.RES_PARERR;
    }
  }
}

class FatPartitionFs extends PartitionFsBase {
  readonly kind = 'fat' as const;
  constructor(
    private readonly ff: FatFs.FatFs,
    readonly writable: boolean,
  ) {
    super();
  }

  private check(op: string, path: string, result: number): void {
    if (result !== FatFs.FR_OK) throw new FatError(op, path, RESULT_NAMES[result] ?? `FRESULT ${result}`);
  }

  /** Runs `fn` with scratch memory in the WASM heap, always freed. */
  private withMemory<T>(size: number, fn: (ptr: number) => T): T {
    const ptr = this.ff.malloc(size);
    try {
      return fn(ptr);
    } finally {
      this.ff.free(ptr);
    }
  }

  async lstat(path: string): Promise<EntryStat | undefined> {
    if (path === '/' || path === '') return { type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0 };
    return this.withMemory(FatFs.sizeof_FILINFO, (fno) => {
      const result = this.ff.f_stat(path, fno);
      if (result === FatFs.FR_NO_FILE || result === FatFs.FR_NO_PATH) return undefined;
      this.check('stat', path, result);
      const isDir = (this.ff.FILINFO_fattrib(fno) & FatFs.AM_DIR) !== 0;
      return { type: isDir ? 'dir' : 'file', mode: isDir ? 0o755 : 0o644, uid: 0, gid: 0, size: this.ff.FILINFO_fsize(fno) };
    });
  }

  async readdir(path: string): Promise<string[]> {
    return this.withMemory(FatFs.sizeof_DIR, (dir) =>
      this.withMemory(FatFs.sizeof_FILINFO, (fno) => {
        this.check('opendir', path, this.ff.f_opendir(dir, path));
        const names: string[] = [];
        try {
          for (;;) {
            this.check('readdir', path, this.ff.f_readdir(dir, fno));
            const name = this.ff.FILINFO_fname(fno);
            if (name === '') break;
            names.push(name);
          }
        } finally {
          this.ff.f_closedir(dir);
        }
        return names;
      }),
    );
  }

  async readFile(path: string): Promise<Buffer> {
    return this.withFile(path, FatFs.FA_READ, (fil) =>
      this.withMemory(IO_CHUNK + 4, (buf) => {
        const size = this.ff.f_size(fil);
        const out = Buffer.alloc(size);
        const countPtr = buf + IO_CHUNK;
        for (let done = 0; done < size; ) {
          const want = Math.min(IO_CHUNK, size - done);
          this.check('read', path, this.ff.f_read(fil, buf, want, countPtr));
          const got = this.ff.getValue(countPtr, 'i32');
          if (got === 0) break;
          out.set(this.ff.HEAPU8.subarray(buf, buf + got), done);
          done += got;
        }
        return out;
      }),
    );
  }

  async readlink(path: string): Promise<string> {
    throw new FatError('readlink', path, 'FAT has no symlinks');
  }

  async writeStream(path: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, _meta?: FileMeta): Promise<number> {
    const existing = await this.lstat(path);
    if (existing?.type === 'dir') throw new FatError('write', path, 'is a directory');
    const fil = this.ff.malloc(FatFs.sizeof_FIL);
    const buf = this.ff.malloc(IO_CHUNK + 4);
    let total = 0;
    try {
      this.check('open', path, this.ff.f_open(fil, path, FatFs.FA_WRITE | FatFs.FA_CREATE_ALWAYS));
      try {
        for await (const chunk of rechunk(toAsync(source), IO_CHUNK)) {
          this.ff.HEAPU8.set(chunk, buf);
          this.check('write', path, this.ff.f_write(fil, buf, chunk.length, buf + IO_CHUNK));
          if (this.ff.getValue(buf + IO_CHUNK, 'i32') !== chunk.length) throw new FatError('write', path, 'partition full');
          total += chunk.length;
        }
      } finally {
        this.check('close', path, this.ff.f_close(fil));
      }
    } finally {
      this.ff.free(buf);
      this.ff.free(fil);
    }
    return total;
  }

  protected async makeDir(dir: string): Promise<void> {
    this.check('mkdir', dir, this.ff.f_mkdir(dir));
  }

  protected notADirectory(dir: string): Error {
    return new FatError('mkdir', dir, 'a file is in the way');
  }

  async symlink(_target: string, path: string): Promise<void> {
    throw new FatError('symlink', path, 'FAT has no symlinks');
  }

  protected async removeEntry(path: string): Promise<void> {
    this.check('unlink', path, this.ff.f_unlink(path));
  }

  private withFile<T>(path: string, mode: number, fn: (fil: number) => T): T {
    return this.withMemory(FatFs.sizeof_FIL, (fil) => {
      this.check('open', path, this.ff.f_open(fil, path, mode));
      try {
        return fn(fil);
      } finally {
        this.ff.f_close(fil);
      }
    });
  }
}

/** Mounts the FAT boot partition for the duration of `fn`, always unmounting after. */
export async function withBootPartition<T>(
  layout: ImageLayout,
  fn: (fs: PartitionFs) => Promise<T>,
  options: ScopeOptions = {},
): Promise<T> {
  const writable = options.writable ?? false;
  const fd = openSync(layout.path, writable ? 'r+' : 'r');
  const diskio = new PartitionDiskIO(fd, layout.boot.offset, layout.boot.size / SECTOR, writable);
  try {
    const ff = await FatFs.create({ diskio });
    const fatfs = ff.malloc(FatFs.sizeof_FATFS);
    const mounted = ff.f_mount(fatfs, '', 1);
    if (mounted !== FatFs.FR_OK) {
      ff.free(fatfs);
      throw new FatError('mount', `partition ${layout.boot.number}`, RESULT_NAMES[mounted] ?? String(mounted));
    }
    try {
      return await fn(new FatPartitionFs(ff, writable));
    } finally {
      ff.f_unmount('');
      ff.free(fatfs);
      if (writable) fsyncSync(fd);
    }
  } catch (error) {
    // Whatever FatFs made of it (FR_DISK_ERR), a failed write to the image is the cause.
    throw withPath(diskio.writeFailure ?? error, layout.path);
  } finally {
    closeSync(fd);
  }
}
