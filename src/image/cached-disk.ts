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
 */
const PAGE = 4096;
const MAX_RUN = 4 * 1024 * 1024;

export class CachedFileDisk extends Disk {
  private readonly dirty = new Map<number, Buffer>();
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

  protected async _read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<ReadResult> {
    this.stats.readCalls += 1;
    let done = 0;
    while (done < length) {
      const position = fileOffset + done;
      const page = Math.floor(position / PAGE);
      const inPage = position - page * PAGE;
      const cached = this.dirty.get(page);
      if (cached) {
        const take = Math.min(PAGE - inPage, length - done);
        cached.copy(buffer, bufferOffset + done, inPage, inPage + take);
        done += take;
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
        cached = Buffer.allocUnsafe(PAGE);
        // A partial page keeps the bytes around it (past the end of the file they are zeros).
        if (take < PAGE) cached.fill(0, readSync(this.fd, cached, 0, PAGE, page * PAGE));
        this.dirty.set(page, cached);
      }
      buffer.copy(cached, inPage, bufferOffset + done, bufferOffset + done + take);
      done += take;
    }
    if (!this.keepInMemory && this.dirty.size * PAGE > this.maxDirtyBytes) this.remembering(() => this.writeBack());
    return { bytesWritten: length, buffer };
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
  }
}
