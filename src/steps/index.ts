import type { Step } from '../engine/step.js';
import { buildStamp } from './build-stamp.js';
import { clock } from './clock.js';
import { docker } from './docker.js';
import { hostname } from './hostname.js';
import { nographics } from './nographics.js';
import { OVERLAYS_DIR, overlaysStep } from './overlays.js';
import { power } from './power.js';
import { readonlyRoot } from './readonly-root.js';
import { remoteAccess } from './remote-access.js';
import { usbGadget } from './usb-gadget.js';

/** The device features, applied in this order. */
export const STEPS: Step[] = [
  nographics,
  power,
  usbGadget,
  readonlyRoot,
  clock,
  docker,
  remoteAccess,
  hostname,
  overlaysStep(OVERLAYS_DIR),
  buildStamp,
];

/** `--list-steps`: one line per step, `name  summary`, in build order (the README's step list is this). */
export function listSteps(steps: readonly Step[]): string {
  const width = Math.max(...steps.map((step) => step.name.length)) + 2;
  return steps.map((step) => `${step.name.padEnd(width)}${step.summary}\n`).join('');
}
