import { fdatasyncSync, fstatSync, readSync, writevSync } from 'node:fs';
import { Disk, type ReadResult, type WriteResult } from 'file-disk';

/**
 * A file-backed Disk for libext2fs with a write-back page cache.
 *
 * libext2fs (through the ext2fs WASM binding) reads and writes one file system block
 * per call, and file-disk's FileDisk turns each into an async libuv round trip: writing
 * 32 MiB of file data took ~130k reads plus ~130k writes of one block each, ~66 µs
 * apiece, i.e. 3 MiB/s. Here reads are synchronous (page-cache hits cost microseconds),
 * writes land in memory, and flush() writes the dirty pages back as few large sorted
 * runs. Memory is bounded: past `maxDirtyBytes` the dirty pages are written back early.
 *
 * Writing one 4 KiB block of file data costs libext2fs about four block writes and four
 * block reads (the data, the inode's table block, the extent leaf, read again and again),
 * so this disk's own cost per call matters: read and write replace file-disk's, whose
 * read plan and list of recorded chunks are for features this disk does not use; the
 * dirty pages come from reused slabs instead of one allocation (and one GC'd buffer) each;
 * and the blocks read again and again are kept, so that each is one syscall, not thousands.
 */
const PAGE = 4096;
const MAX_RUN = 4 * 1024 * 1024;
const SLAB_PAGES = 256;
/** Clean pages kept for reads: the hot ones are a handful; past this many all are dropped. */
const MAX_CLEAN_PAGES = 2048;

/** Page buffers carved from 1 MiB slabs; all are handed back at once, after a write-back. */
class PageSlabs {
  private readonly slabs: Buffer[] = [];
  private used = 0;

  take(): Buffer {
    const slab = Math.floor(this.used / SLAB_PAGES);
    if (slab === this.slabs.length) this.slabs.push(Buffer.allocUnsafe(SLAB_PAGES * PAGE));
    const start = (this.used % SLAB_PAGES) * PAGE;
    this.used += 1;
    return this.slabs[slab].subarray(start, start + PAGE);
  }

  reset(): void {
    this.used = 0;
  }
}

export class CachedFileDisk extends Disk {
  private readonly dirty = new Map<number, Buffer>();
  /** Pages as they are in the file, read whole; never one that is dirty. */
  private readonly clean = new Map<number, Buffer>();
  private readonly pages = new PageSlabs();
  private readonly size: number;
  /**
   * The first write to the file that failed (a full disk, say). The ext2fs binding tells libext2fs
   * only EIO for any error of the disk, so withRootfs rethrows this one: it says what went wrong.
   */
  writeFailure: unknown;
  /** Write-back statistics, for the benchmark. */
  readonly stats = { readCalls: 0, writeCalls: 0, flushedRuns: 0, flushedBytes: 0 };

  constructor(
    private readonly fd: number,
    private readonly keepInMemory: boolean,
    private readonly maxDirtyBytes = 32 * 1024 * 1024,
  ) {
    // file-disk's own read-only mode drops writes, so libext2fs would read back stale
    // metadata; read-only here means the dirty pages simply never leave memory.
    super(false, false, false, true);
    this.size = fstatSync(fd).size;
  }

  protected async _getCapacity(): Promise<number> {
    return this.size;
  }

  async read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<ReadResult> {
    return this._read(buffer, bufferOffset, length, fileOffset);
  }

  async write(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<WriteResult> {
    return this._write(buffer, bufferOffset, length, fileOffset);
  }

  /**
   * A discard is a hint that leaves the file as it is (file-disk never wrote it either); libext2fs
   * issues none while it writes files, and nothing it reads back depends on one.
   */
  async discard(): Promise<void> {}

  protected async _read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<ReadResult> {
    this.stats.readCalls += 1;
    let done = 0;
    while (done < length) {
      const position = fileOffset + done;
      const page = Math.floor(position / PAGE);
      const inPage = position - page * PAGE;
      const cached = this.dirty.get(page) ?? this.clean.get(page);
      if (cached) {
        const take = Math.min(PAGE - inPage, length - done);
        cached.copy(buffer, bufferOffset + done, inPage, inPage + take);
        done += take;
        continue;
      }
      if (inPage === 0 && length - done === PAGE) {
        done += this.readClean(page).copy(buffer, bufferOffset + done);
        continue;
      }
      // Read the whole clean stretch up to the next dirty page in one call.
      let end = position + (length - done);
      for (let p = page + 1; p * PAGE < end; p += 1) {
        if (this.dirty.has(p)) {
          end = p * PAGE;
          break;
        }
      }
      const got = readSync(this.fd, buffer, bufferOffset + done, end - position, position);
      if (got === 0) break;
      done += got;
    }
    return { bytesRead: done, buffer };
  }

  protected async _write(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<WriteResult> {
    this.stats.writeCalls += 1;
    let done = 0;
    while (done < length) {
      const position = fileOffset + done;
      const page = Math.floor(position / PAGE);
      const inPage = position - page * PAGE;
      const take = Math.min(PAGE - inPage, length - done);
      let cached = this.dirty.get(page);
      if (!cached) {
        cached = this.pages.take();
        // A partial page keeps the bytes around it.
        if (take < PAGE) this.readClean(page).copy(cached);
        this.clean.delete(page);
        this.dirty.set(page, cached);
      }
      buffer.copy(cached, inPage, bufferOffset + done, bufferOffset + done + take);
      done += take;
    }
    if (!this.keepInMemory && this.dirty.size * PAGE > this.maxDirtyBytes) this.remembering(() => this.writeBack());
    return { bytesWritten: length, buffer };
  }

  /** A page as it is in the file (past the end of the file, zeros), kept for the next read. */
  private readClean(page: number): Buffer {
    let cached = this.clean.get(page);
    if (!cached) {
      cached = Buffer.allocUnsafe(PAGE);
      cached.fill(0, readSync(this.fd, cached, 0, PAGE, page * PAGE));
      if (this.clean.size >= MAX_CLEAN_PAGES) this.clean.clear();
      this.clean.set(page, cached);
    }
    return cached;
  }

  protected async _flush(): Promise<void> {
    if (this.keepInMemory) return;
    this.remembering(() => {
      this.writeBack();
      fdatasyncSync(this.fd);
    });
  }

  private remembering(write: () => void): void {
    try {
      write();
    } catch (error) {
      this.writeFailure ??= error;
      throw error;
    }
  }

  /** Writes dirty pages back in ascending order, merging neighbours into runs. */
  private writeBack(): void {
    const pages = [...this.dirty.keys()].sort((a, b) => a - b);
    for (let i = 0; i < pages.length; ) {
      let j = i + 1;
      while (j < pages.length && pages[j] === pages[j - 1] + 1 && (j - i) * PAGE < MAX_RUN) j += 1;
      // writev takes the pages as they are: no copy into one run buffer.
      const run = pages.slice(i, j).map((p) => this.dirty.get(p)!);
      // A write cut short (a disk filling up does that) goes on where it stopped, so that the
      // next write tells why (ENOSPC).
      for (let done = 0; done < run.length * PAGE; ) {
        const page = Math.floor(done / PAGE);
        const rest = [run[page].subarray(done - page * PAGE), ...run.slice(page + 1)];
        const written = writevSync(this.fd, rest, pages[i] * PAGE + done);
        if (written === 0) throw new Error(`write-back wrote nothing at page ${pages[i] + page}`);
        done += written;
      }
      this.stats.flushedRuns += 1;
      this.stats.flushedBytes += run.length * PAGE;
      i = j;
    }
    this.dirty.clear();
    this.pages.reset();
  }
}
