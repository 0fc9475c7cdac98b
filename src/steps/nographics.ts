import { boardOf, recognizeBoard } from '../boards/recognize.js';
import type { Step } from '../engine/step.js';
import { readBootConfig, requireBootConfig, settingEditsOperations, settingsHold } from '../facts/boot-config.js';

/**
 * Server mode: what the board's entry says switches its video off (src/boards/table.ts): on the
 * C2 boot.ini removes the video nodes from the device tree, which frees the memory reserved for
 * them and keeps the display hardware off (less power over USB); on other boards what their boot
 * configuration offers, documented with its source in docs/boards.md.
 */
export const nographics: Step = {
  name: 'nographics',
  summary: 'boot without the video subsystem (setenv nographics "1"; what each board offers: docs/boards.md)',
  async plan({ config, image }) {
    const board = await boardOf(image, config);
    return settingEditsOperations(await requireBootConfig(image), board.video.edits);
  },
  async applied(image) {
    const boot = await readBootConfig(image);
    return boot !== undefined && settingsHold(boot, (await recognizeBoard(image)).video.edits);
  },
};
