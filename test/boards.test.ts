/**
 * The board table: recognition of each stock fixture, the one-line refusal of an image no board
 * matches, the config's `board` checked against the image, and the table kept in step with the
 * config's values.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BoardId } from '../src/boards/board.js';
import { listBoards, renderBoardTable } from '../src/boards/doc.js';
import { recognizeBoard } from '../src/boards/recognize.js';
import { BOARDS } from '../src/boards/table.js';
import { SCHEMA } from '../src/config/schema.js';
import { viewOf, withPartitions } from '../src/engine/patch.js';
import { UserError } from '../src/errors.js';
import { openImage } from '../src/image/open.js';
import { buildImage, REPO } from './support/cli.js';
import { copyOfStockImage, type FixtureVariant, stockImage, tempDir } from './support/images.js';
import { mdelBoot } from './support/mtools.js';

async function recognize(img: string, choice?: BoardId) {
  const layout = await openImage(img);
  return withPartitions(layout, false, (parts) => recognizeBoard(viewOf(layout, parts), choice));
}

describe('the board table', () => {
  it('has one entry per value of the config key board', () => {
    const row = SCHEMA.find((setting) => setting.key === 'board')!;
    expect(BOARDS.map((board) => board.id).sort()).toEqual(
      BOARDS.map((board) => board.id)
        .filter((id) => row.type.accepts(id))
        .sort(),
    );
    expect(row.type.name).toBe(BOARDS.map((board) => JSON.stringify(board.id)).join(' | '));
  });

  it.each([
    ['stock', 'odroid-c2'],
    ['c4', 'odroid-c4'],
  ] as [FixtureVariant, BoardId][])('recognises the %s fixture as %s', async (variant, id) => {
    expect((await recognize(await stockImage(variant))).id).toBe(id);
  });

  it('refuses an image no board matches in one line that lists the boards supported', async () => {
    const dir = await tempDir();
    const img = await copyOfStockImage('stock', dir);
    await mdelBoot(img, ['boot.ini', 'boot.ini.default']);
    const attempt = recognize(img);
    await expect(attempt).rejects.toThrow(UserError);
    const message = await attempt.catch((error: Error) => error.message);
    expect(message).not.toContain('\n');
    expect(message).toMatch(/^no supported board matches this image: .*found: .*Image.*; the boards supported: /);
    for (const board of BOARDS) expect(message).toContain(board.name);
  });

  it('takes the config board when it fits the image, and refuses one that does not', async () => {
    const img = await stockImage('stock');
    expect((await recognize(img, 'odroid-c2')).id).toBe('odroid-c2');
    await expect(recognize(img, 'odroid-c4')).rejects.toThrow(
      /^board "odroid-c4" boots from config\.ini but this image has boot\.ini: set board to the one the image is for \("odroid-c2"\) or leave it out$/,
    );
  });
});

describe('the board table in the docs', () => {
  it.each(['README.md', 'docs/boards.md'])('%s holds the table made from src/boards/table.ts', async (file) => {
    expect(await readFile(join(REPO, file), 'utf8')).toContain(renderBoardTable());
  });
});

describe('--board and --help', () => {
  it('--help lists every board of the table', async () => {
    const run = await buildImage(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(listBoards());
    for (const board of BOARDS) expect(run.stdout).toMatch(new RegExp(`^ {2}${board.id} +`, 'm'));
  });

  it('--board overrides the config and is checked against the image: one error line', async () => {
    const run = await buildImage(['--input', await stockImage('stock'), '--out', await tempDir(), '--board', 'odroid-c4', '--dry-run']);
    expect(run.code).not.toBe(0);
    expect(run.stderr.split('\n').filter((line) => line.startsWith('error:'))).toEqual([
      'error: board "odroid-c4" boots from config.ini but this image has boot.ini: set board to the one the image is for ("odroid-c2") or leave it out',
    ]);
    const unknown = await buildImage([
      '--input',
      await stockImage('stock'),
      '--out',
      await tempDir(),
      '--board',
      'odroid-xu4',
      '--dry-run',
    ]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/^error: --board .*"odroid-c2" \| "odroid-c4" \| "raspberrypi"/m);
  });
});
