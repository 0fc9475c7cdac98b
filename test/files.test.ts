import { existsSync } from 'node:fs';
import { writeFile as nodeWriteFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { refusedWrite } from '../src/errors.js';
import { writeFile } from '../src/files.js';
import { skipWithout } from './support/images.js';

// /dev/full answers every write with ENOSPC, as a full disk does.
const noDevFull = skipWithout({ '/dev/full': existsSync('/dev/full') });

describe.skipIf(noDevFull)('writeFile on a full disk', () => {
  it("names the file, which Node's own writeFile does not", async () => {
    const unnamed = await nodeWriteFile('/dev/full', 'data').catch((error: NodeJS.ErrnoException) => error);
    expect(unnamed).toMatchObject({ code: 'ENOSPC' });
    expect((unnamed as NodeJS.ErrnoException).path).toBeUndefined();

    const error = await writeFile('/dev/full', 'data').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ENOSPC', syscall: 'write', path: '/dev/full' });
    expect(refusedWrite(error)).toBe('ENOSPC');
  });
});
