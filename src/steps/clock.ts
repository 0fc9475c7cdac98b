import { rootfsFile } from '../engine/operations.js';
import type { Step } from '../engine/step.js';
import { renderTemplate } from '../engine/templates.js';
import { enableUnitOperation } from '../facts/systemd.js';

/**
 * systemd-timesyncd's clock file: its mtime is the earliest time it lets the clock start at.
 * libext2fs stamps a written inode with Date.now(), which the build pins to SOURCE_DATE_EPOCH
 * when set (src/output/reproducible.ts): the mtime is the build's time either way.
 */
export const CLOCK_FILE = '/var/lib/systemd/timesync/clock';
export const CLOCK_FLOOR_SCRIPT = '/usr/local/sbin/clock-floor';
export const CLOCK_FLOOR_UNIT = 'clock-floor.service';

export const clock: Step = {
  name: 'clock',
  summary: `no clock before the build time: timesyncd's clock file, ${CLOCK_FLOOR_UNIT} early in boot`,
  async plan() {
    const view = { clockFile: CLOCK_FILE };
    return [
      // timesyncd's file is empty: only its mtime counts.
      ...rootfsFile(CLOCK_FILE, ''),
      ...rootfsFile(CLOCK_FLOOR_SCRIPT, await renderTemplate('clock/usr/local/sbin/clock-floor.mustache', view), 0o755),
      ...rootfsFile(
        `/etc/systemd/system/${CLOCK_FLOOR_UNIT}`,
        await renderTemplate(`clock/etc/systemd/system/${CLOCK_FLOOR_UNIT}.mustache`, view),
      ),
      enableUnitOperation(CLOCK_FLOOR_UNIT, 'sysinit.target'),
    ];
  },
  async applied(image) {
    return (await image.lstat('rootfs', `/etc/systemd/system/sysinit.target.wants/${CLOCK_FLOOR_UNIT}`)) !== undefined;
  },
};
