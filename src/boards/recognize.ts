/**
 * Which board an image is for: the boot files its FAT holds decide the format, and where boards
 * share one, their device trees and os-release; the config's `board` picks when that is not
 * enough. An image no board matches is one line listing the boards supported.
 */
import { posix } from 'node:path';
import type { BuildConfig } from '../config/schema.js';
import type { ImageView } from '../engine/step.js';
import { UserError } from '../errors.js';
import { bootPartitionNames, readBootConfig } from '../facts/boot-config.js';
import type { Board, BoardId } from './board.js';
import { BOARDS } from './table.js';

/** The boards supported, for messages: `ODROID-C2 (HardKernel's ...); ...`. */
export const supportedBoards = (boards: readonly Board[] = BOARDS) => boards.map((board) => `${board.name} (${board.image})`).join('; ');
const boardIds = (boards: readonly Board[]) => boards.map((board) => `"${board.id}"`).join(', ');

/** The FAT's device tree blobs, in its root and one directory down (amlogic/, broadcom/). */
async function deviceTrees(image: ImageView): Promise<string[]> {
  const found: string[] = [];
  for (const name of await image.readdir('boot', '/')) {
    if (/\.dtb$/i.test(name)) found.push(name);
    else if ((await image.lstat('boot', `/${name}`))?.type === 'dir') {
      found.push(...(await image.readdir('boot', `/${name}`)).filter((child) => /\.dtb$/i.test(child)));
    }
  }
  return found.map((name) => posix.basename(name));
}

/** os-release's ID (/etc/os-release, else /usr/lib/os-release, as systemd reads them). */
async function osReleaseId(image: ImageView): Promise<string | undefined> {
  for (const path of ['/etc/os-release', '/usr/lib/os-release']) {
    const text = await image.readText('rootfs', path);
    const id = text && /^ID=["']?([^"'\s]+)/m.exec(text)?.[1];
    if (id) return id;
  }
  return undefined;
}

/** The board `image` is for; `choice` (the config's `board`) when given, checked against the image's boot files. */
export async function recognizeBoard(image: ImageView, choice?: BoardId): Promise<Board> {
  const boot = await readBootConfig(image);
  if (!boot) {
    throw new UserError(
      `no supported board matches this image: the boot partition has neither boot.ini nor config.ini (found: ${await bootPartitionNames(image)}), nor a Raspberry Pi's config.txt and cmdline.txt; the boards supported: ${supportedBoards()}`,
    );
  }
  const candidates = BOARDS.filter((board) => board.recognize.bootConfig === boot.kind);
  if (choice !== undefined) {
    const chosen = BOARDS.find((board) => board.id === choice)!;
    if (candidates.includes(chosen)) return chosen;
    throw new UserError(
      `board "${choice}" boots from ${chosen.recognize.bootConfig} but this image has ${boot.settings.slice(1)}: set board to the one the image is for (${boardIds(candidates)}) or leave it out`,
    );
  }
  if (candidates.length === 1) return candidates[0];
  const trees = await deviceTrees(image);
  const id = await osReleaseId(image);
  const matching = candidates.filter(
    (board) => trees.some((tree) => board.recognize.deviceTrees.test(tree)) && (id === undefined || board.recognize.osRelease.includes(id)),
  );
  if (matching.length === 1) return matching[0];
  throw new UserError(
    `this image's ${boot.settings.slice(1)} could be for ${(matching.length > 0 ? matching : candidates).map((b) => b.name).join(' or ')}: set "board" in the config (or --board) to ${boardIds(matching.length > 0 ? matching : candidates)}`,
  );
}

/** The board a build for `config` patches `image` as. */
export const boardOf = (image: ImageView, config: BuildConfig): Promise<Board> => recognizeBoard(image, config.board);
