/**
 * Vitest's global setup: the reference files are made sure of once per run, before any test file
 * loads, so that their absence is one `error:` line instead of an ENOENT in every file that reads
 * them. REFERENCE_DIR, set here, reaches the test workers and the scripts they run.
 */
import { ensureReferenceFilesOrExit } from './reference.js';

export default async function setup(): Promise<void> {
  process.env.REFERENCE_DIR = await ensureReferenceFilesOrExit();
}
