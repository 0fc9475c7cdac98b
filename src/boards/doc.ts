/** The board table as Markdown: the README and docs/boards.md hold it, a test keeps them in step with table.ts. */
import type { PowerProfile } from '../config/schema.js';
import type { Board } from './board.js';
import { BOARDS } from './table.js';

const cell = (text: string) => text.replaceAll('|', '\\|');

export function renderBoardTable(boards: readonly Board[] = BOARDS): string {
  const rows = boards.map((board) => {
    const profiles = (Object.keys(board.power.profiles) as PowerProfile[]).map((profile) => `\`${profile}\``).join(', ');
    return [
      `${board.name} (\`${board.id}\`)`,
      board.image,
      board.port,
      `${profiles}: ${board.power.note}`,
      board.kernel.storageDriver,
      board.provenAtBoot,
    ]
      .map(cell)
      .join(' | ');
  });
  return [
    '| board (`board`) | image | port | power profiles | storage driver | proven at boot |',
    '|---|---|---|---|---|---|',
    ...rows.map((row) => `| ${row} |`),
    '',
  ].join('\n');
}

/** The boards as `--help` lists them: one line each, `id  name: image`. */
export function listBoards(boards: readonly Board[] = BOARDS): string {
  const width = Math.max(...boards.map((board) => board.id.length)) + 2;
  return boards.map((board) => `  ${board.id.padEnd(width)}${board.name}: ${board.image}; ${board.port}\n`).join('');
}
