import { buildStamp } from './build-stamp.js';
import type { Step } from './step.js';

/** The device features, applied in this order. */
export const STEPS: Step[] = [buildStamp];
