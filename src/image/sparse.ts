import { type FileHandle, open } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { withPath } from '../errors.js';

/** All-zero blocks of this size, aligned in the file, become holes instead of being written. */
const BLOCK = 64 * 1024;
const ZEROS = Buffer.alloc(BLOCK);

/**
 * A write stream that creates (or truncates) `path` and leaves all-zero blocks as holes, so a
 * disk image that is mostly empty space takes only the room of its data.
 */
export function createSparseWriteStream(path: string): Writable {
  let handle: FileHandle | undefined;
  let position = 0; // file offset where the next block goes; always a multiple of BLOCK until the end
  const carry = Buffer.alloc(BLOCK); // a partial block held back until the next chunk completes it
  let carried = 0;

  const writeAll = async (data: Buffer, at: number) => {
    for (let done = 0; done < data.length; ) {
      const { bytesWritten } = await handle!.write(data, done, data.length - done, at + done);
      done += bytesWritten;
    }
  };

  // Writes whole blocks (the last one may be short at the end of the file), each run of
  // non-zero blocks in one call.
  const writeBlocks = async (data: Buffer) => {
    let runStart = -1;
    for (let offset = 0; offset < data.length; offset += BLOCK) {
      const block = data.subarray(offset, offset + BLOCK);
      const zero = block.equals(ZEROS.subarray(0, block.length));
      if (zero && runStart >= 0) {
        await writeAll(data.subarray(runStart, offset), position + runStart);
        runStart = -1;
      } else if (!zero && runStart < 0) {
        runStart = offset;
      }
    }
    if (runStart >= 0) await writeAll(data.subarray(runStart), position + runStart);
    position += data.length;
  };

  const absorb = async (chunk: Buffer) => {
    let offset = 0;
    if (carried > 0) {
      offset = Math.min(BLOCK - carried, chunk.length);
      chunk.copy(carry, carried, 0, offset);
      carried += offset;
      if (carried < BLOCK) return;
      await writeBlocks(carry);
      carried = 0;
    }
    const wholeEnd = offset + Math.floor((chunk.length - offset) / BLOCK) * BLOCK;
    if (wholeEnd > offset) await writeBlocks(chunk.subarray(offset, wholeEnd));
    carried = chunk.copy(carry, 0, wholeEnd);
  };

  const finish = async () => {
    if (carried > 0) await writeBlocks(carry.subarray(0, carried));
    // Trailing holes were never written, so the file must be extended to its full size.
    await handle!.truncate(position);
    await handle!.close();
    handle = undefined;
  };

  return new Writable({
    construct(callback) {
      open(path, 'w').then((opened) => {
        handle = opened;
        callback();
      }, callback);
    },
    // Writes through the handle fail without the file's name, which a full disk must be told with.
    write(chunk: Buffer, _encoding, callback) {
      absorb(chunk).then(
        () => callback(),
        (error: Error) => callback(withPath(error, path)),
      );
    },
    final(callback) {
      finish().then(
        () => callback(),
        (error: Error) => callback(withPath(error, path)),
      );
    },
    destroy(error, callback) {
      if (!handle) return callback(error);
      handle.close().finally(() => callback(error));
    },
  });
}
