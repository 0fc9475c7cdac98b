import { readFileSync } from 'node:fs';
import type { Step } from '../engine/step.js';

import { BUILD_STAMP_PATH } from '../facts/build-stamp.js';

const toolVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * Records in the rootfs which tool and steps produced the image, so `npm run inspect`
 * (and a person on the device) can tell a patched image from a stock one.
 */
export const buildStamp: Step = {
  name: 'build-stamp',
  summary: `record the tool version and applied steps in ${BUILD_STAMP_PATH}`,
  async plan({ config, steps }) {
    const stamp = { tool: 'odroid-buildx-image', version: toolVersion, name: config.name, steps };
    return [
      { op: 'write', on: 'rootfs', path: BUILD_STAMP_PATH, content: `${JSON.stringify(stamp, null, 2)}\n`, mode: 0o644, uid: 0, gid: 0 },
    ];
  },
  async applied(image) {
    return (await image.lstat('rootfs', BUILD_STAMP_PATH)) !== undefined;
  },
};
