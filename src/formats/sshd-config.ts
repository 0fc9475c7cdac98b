/** sshd_config, as text: the block this tool keeps first in it. */

/** How the block is found again: its first line starts with this, its last line is SSHD_BLOCK_END. */
const BEGIN_MARKER = '# BEGIN odroid-buildx-image';
export const SSHD_BLOCK_BEGIN = `${BEGIN_MARKER} (remote-access step, docs/host-kit.md): SSH takes keys only. A rebuild replaces this block.`;
export const SSHD_BLOCK_END = '# END odroid-buildx-image';

const keywordOf = (line: string) => /^\s*([A-Za-z]+)(?:\s|=)/.exec(line)?.[1].toLowerCase();

/**
 * Puts `block` (SSHD_BLOCK_BEGIN..SSHD_BLOCK_END) first in sshd_config, replacing an earlier copy, and comments out the
 * file's own settings of the block's keywords, inside Match blocks too (sshd keywords are
 * case-insensitive): a Match line's settings win for the users it matches, so a stock
 * `Match User odroid` with its own key file or passwords would open a way around the block.
 */
export function setSshdBlock(config: string, block: string): string {
  const lines = config.split('\n');
  const begin = lines.findIndex((line) => line.startsWith(BEGIN_MARKER));
  const end = begin < 0 ? -1 : lines.findIndex((line, index) => index > begin && line === SSHD_BLOCK_END);
  if (begin >= 0 && end >= 0) lines.splice(begin, end - begin + 1);
  const keywords = new Set(
    block
      .split('\n')
      .filter((line) => !line.startsWith('#'))
      .map(keywordOf)
      .filter(Boolean),
  );
  const edited = lines.map((line) => {
    const keyword = keywordOf(line);
    return keyword !== undefined && keywords.has(keyword) ? `#${line}` : line;
  });
  return `${block.replace(/\n*$/, '\n')}${edited.join('\n')}`;
}
