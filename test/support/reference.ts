/**
 * The reference files: HardKernel's boot files and the C2 kernel config, the ground truth the tests
 * and the fixture scripts read. They are other projects' public files, so the repository holds only
 * their pins (below) and each checkout gets the files from, in this order:
 *   1. $REFERENCE_DIR, a directory the user already has;
 *   2. ../shared/reference beside the checkout (this project's own machines);
 *   3. .cache/reference/ in the repository (git-ignored), fetched once from the pinned sources.
 * Every file is checked against its pinned sha256 wherever it comes from; a fetched file that does
 * not match is refused and not kept. Vitest's global setup (reference-setup.ts) and
 * `npm run fetch-reference` (fetch-reference.ts) both go through ensureReferenceFiles.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUserError, UserError } from '../../src/errors.js';

export interface ReferenceFile {
  /** Where the file sits in the reference directory. */
  path: string;
  /** Its URL below the base URL (REFERENCE_BASE_URL, by default GitHub's raw file host). */
  source: string;
  sha256: string;
}

// Each source is pinned to a commit, so its file can never change under the sum.
const C2_BOOTINI = 'mdrjr/c2_bootini/bab3d39d393af200de737d0203fbf9e3f250dbca';
const C4_BOOTINI = 'mdrjr/c4_bootini/613e629ff0bc049b399c0e76977ee754aad1444e';
const KALI_ARM = 'offensive-security/kali-arm-build-scripts/bb2446989eb7b07b36854be079fe331dd4ad26e7';
// pi-gen's bookworm-arm64 branch and its master (which builds trixie).
const PI_GEN = {
  bookworm: 'RPi-Distro/pi-gen/d7a31c6aa09f4b867902c51da2b45807c0a1709e',
  trixie: 'RPi-Distro/pi-gen/314262cb286b8f33327a6f0cbabe14c625021ca0',
};
const PI_SUMS = {
  bookworm: {
    'config.txt': '4a0bdccd0c324a59bfb16a11d45f34227bfc64e77705553cf5c49b044a0b2a72',
    'cmdline.txt.in': 'ace45d14188d3a72288412018b9377a7f7160d5e0928b8bfb00f75f3f27b028c',
    'fstab.in': 'cdc80f4c958f79950036c706bcf83118acc76f19ba9e75e636f76ee5483caba7',
  },
  trixie: {
    'config.txt': '1a312a2c82554d6d9bb49b09c66f1e137284c0676e84ec6501e9a013c27aa928',
    'cmdline.txt.in': '97c1c7921f9cf28102a4f34b288643023f86b0e4f4fb4b3196d642c57342d765',
    'fstab.in': 'cdc80f4c958f79950036c706bcf83118acc76f19ba9e75e636f76ee5483caba7',
  },
};
// pi-gen's templates: `.in` here, because ROOTDEV/BOOTDEV in them are replaced when an image is made.
const PI_PATHS = {
  'config.txt': 'stage1/00-boot-files/files/config.txt',
  'cmdline.txt.in': 'stage1/00-boot-files/files/cmdline.txt',
  'fstab.in': 'stage1/01-sys-tweaks/files/fstab',
};

export const REFERENCE_FILES: readonly ReferenceFile[] = [
  // HardKernel's boot.ini of the 3.16-kernel Ubuntu 18.04 C2 images (branch 3.16).
  {
    path: 'odroid-c2/boot.ini',
    source: `${C2_BOOTINI}/boot.ini`,
    sha256: '3287d2159028015ad68ec173a99c98107bd62404cf7a83168d579456d7fff496',
  },
  // The persistent overrides the bootini package re-applies after it rewrites boot.ini on upgrade.
  {
    path: 'odroid-c2/boot.ini.default',
    source: `${C2_BOOTINI}/boot.ini.default`,
    sha256: 'de3e8034b513e20c7702752e04f44b45a44488560a9716258e73df06965aec95',
  },
  // The C2 kernel's config (from hardkernel's odroidc2-v3.16.y): which features are modules.
  {
    path: 'odroid-c2/kernel-3.16.60.config',
    source: `${KALI_ARM}/kernel-configs/odroid-c2-3.16.config`,
    sha256: '24c00185d58e2bc885809dc9af49ee35af95d7957e0e6568811ce837c345e6f6',
  },
  // The C4's boot.ini and the INI-style config.ini of the C4/N2 boards.
  {
    path: 'odroid-c4/boot.ini',
    source: `${C4_BOOTINI}/boot.ini`,
    sha256: '4dd74cc5e125461b18518678ff7940aff30210067c7ccf2ae96a7b4dd20737f6',
  },
  {
    path: 'odroid-c4/config.ini',
    source: `${C4_BOOTINI}/config.ini`,
    sha256: '8cb523de9101a61ad932a177ab6043d7c1fc8c30111166af61a3fb1879512974',
  },
  // Raspberry Pi OS's boot files and fstab, as pi-gen puts them into its images.
  ...(['bookworm', 'trixie'] as const).flatMap((suite) =>
    (['config.txt', 'cmdline.txt.in', 'fstab.in'] as const).map((file) => ({
      path: `raspberrypi/${suite}/${file}`,
      source: `${PI_GEN[suite]}/${PI_PATHS[file]}`,
      sha256: PI_SUMS[suite][file],
    })),
  ),
];

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BESIDE_CHECKOUT = resolve(REPO, '../shared/reference');
const CACHE = join(REPO, '.cache/reference');
const DEFAULT_BASE_URL = 'https://raw.githubusercontent.com';
const FETCH_TIMEOUT_MS = 60_000;
const FETCH_COMMAND = '`npm run fetch-reference`';

/** Where the reference files are read from; ensureReferenceFiles makes sure they are there. */
export function referenceDir(): string {
  if (process.env.REFERENCE_DIR) return resolve(process.env.REFERENCE_DIR);
  return existsSync(BESIDE_CHECKOUT) ? BESIDE_CHECKOUT : CACHE;
}

export const referencePath = (file: string) => join(referenceDir(), file);

export const referenceText = (file: string) => readFileSync(referencePath(file), 'utf8');

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Why a file in `dir` is not usable, or undefined when it is there with its pinned sum. */
async function problemWith(dir: string, file: ReferenceFile): Promise<string | undefined> {
  let data: Buffer;
  try {
    data = await readFile(join(dir, file.path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'not found';
    throw error;
  }
  const sum = sha256(data);
  return sum === file.sha256 ? undefined : `sha256 ${sum}, not the pinned ${file.sha256}`;
}

/** Fetches one file into the cache: undefined when it is in place, else why not. */
async function fetchIntoCache(file: ReferenceFile, baseUrl: string): Promise<string | undefined> {
  const url = `${baseUrl}/${file.source}`;
  let data: Buffer;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!response.ok) return `${url} answered HTTP ${response.status}`;
    data = Buffer.from(await response.arrayBuffer());
  } catch (error) {
    // Node's fetch says only "fetch failed": the cause says why (ECONNREFUSED, ENOTFOUND, ...).
    const { cause, message } = error as Error & { cause?: { code?: string; message?: string } };
    return `fetching from ${baseUrl} failed: ${cause?.code ?? cause?.message ?? message}`;
  }
  const sum = sha256(data);
  if (sum !== file.sha256) return `${url} sent sha256 ${sum}, not the pinned ${file.sha256}: refused, not kept`;
  const dest = join(CACHE, file.path);
  // Written beside and renamed: a reader (another run) sees the whole file or none.
  const part = `${dest}.${process.pid}.part`;
  await mkdir(dirname(dest), { recursive: true });
  try {
    await writeFile(part, data);
    await rename(part, dest);
  } finally {
    await rm(part, { force: true });
  }
  return undefined;
}

/** "a, b (why); c (why)": the files grouped by what is wrong with them. */
function describeProblems(problems: [string, string][]): string {
  const byReason = new Map<string, string[]>();
  for (const [path, reason] of problems) byReason.set(reason, [...(byReason.get(reason) ?? []), path]);
  return [...byReason].map(([reason, paths]) => `${paths.join(', ')} (${reason})`).join('; ');
}

/**
 * The reference directory with every pinned file in it, verified; into the cache, what is missing
 * there is fetched first. Rejects with a one-line UserError naming the files, the command that
 * fetches them and the variable that points elsewhere.
 */
export async function ensureReferenceFiles(): Promise<string> {
  const dir = referenceDir();
  const baseUrl = (process.env.REFERENCE_BASE_URL || DEFAULT_BASE_URL).replace(/\/+$/, '');
  // All at once: without network, each fetch may wait out its timeout.
  const checked = await Promise.all(
    REFERENCE_FILES.map(async (file): Promise<[string, string | undefined]> => {
      const problem = await problemWith(dir, file);
      if (!problem || dir !== CACHE) return [file.path, problem];
      // A cached file that lost its sum is dropped, whether or not a good one can be fetched now.
      await rm(join(CACHE, file.path), { force: true });
      return [file.path, await fetchIntoCache(file, baseUrl)];
    }),
  );
  const problems = checked.filter((entry): entry is [string, string] => entry[1] !== undefined);
  if (problems.length === 0) return dir;
  const listed = describeProblems(problems);
  if (process.env.REFERENCE_DIR) {
    throw new UserError(
      `reference files missing in REFERENCE_DIR=${dir}: ${listed}; point REFERENCE_DIR at a directory that holds them, or unset it and run ${FETCH_COMMAND}`,
    );
  }
  if (dir === BESIDE_CHECKOUT) {
    throw new UserError(`reference files missing in ${dir}: ${listed}; set REFERENCE_DIR to a directory that holds them`);
  }
  throw new UserError(
    `reference files missing: ${listed}; run ${FETCH_COMMAND} with network access, or set REFERENCE_DIR to a directory that holds them`,
  );
}

/** ensureReferenceFiles for a command line: its failure is one `error:` line and exit status 1. */
export async function ensureReferenceFilesOrExit(): Promise<string> {
  try {
    return await ensureReferenceFiles();
  } catch (error) {
    if (!isUserError(error)) throw error;
    process.stderr.write(`error: ${error.message}\n`);
    process.exit(1);
  }
}
