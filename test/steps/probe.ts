import type { ImageView, Step } from '../../src/engine/step.js';
import { patchFixture } from './patch-fixture.js';

/** A step that only looks: runs `look` on the image as the pipeline shows it to steps. */
export function probeStep<T>(look: (image: ImageView) => Promise<T>): { step: Step; result: () => T } {
  let seen: { value: T } | undefined;
  const step: Step = {
    name: 'probe',
    summary: 'test probe',
    async plan({ image }) {
      seen = { value: await look(image) };
      return [];
    },
    async applied() {
      return false;
    },
  };
  return {
    step,
    result: () => {
      if (!seen) throw new Error('the probe step did not run');
      return seen.value;
    },
  };
}

/** What `step.applied()` says of an image, asked through the real pipeline. */
export async function appliedOn(step: Step, img: string): Promise<boolean> {
  const probe = probeStep((image) => step.applied(image));
  await patchFixture([probe.step], {}, { img });
  return probe.result();
}
