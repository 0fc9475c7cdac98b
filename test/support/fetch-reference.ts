/**
 * `npm run fetch-reference`: makes sure the reference files are there (fetched into .cache/reference/
 * when neither REFERENCE_DIR nor ../shared/reference has them) and prints their directory, which is
 * how the shell scripts that read them find it.
 */
import { ensureReferenceFilesOrExit } from './reference.js';

console.log(await ensureReferenceFilesOrExit());
