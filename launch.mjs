/**
 * node launch.mjs ENTRY.ts [args]: what `npm run build-image`, `inspect` and `flash` run.
 *
 * tsx transpiles every module through loader hooks on every start (~1.9 s of CPU before a build
 * begins); the same code bundled ahead by esbuild starts in ~0.65 s. So the entry is bundled once
 * into .cache/launch/ and the bundle runs in this process, until a source changes: the bundle
 * records the sha256 of every file it was made from (and of this launcher, tsconfig.json and
 * esbuild's version), and is made again when any differs. The packages in node_modules stay
 * outside the bundle (they load their WASM beside themselves), and every module's
 * `import.meta.url` stays its source file's, so paths relative to the sources (templates/,
 * overlays/, package.json) resolve as under tsx. Where the cache cannot be written (a checkout
 * that another user owns), the entry runs through tsx as before.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = dirname(fileURLToPath(import.meta.url));
/** Inside the checkout: the bundles import the packages in its node_modules. */
const CACHE = join(REPO, '.cache', 'launch');
/** The first line of a bundle: the files it was made from and their sha256. */
const HEADER = '// launch inputs: ';

const sha256 = (data) => createHash('sha256').update(data).digest('hex');

/** What a bundle depends on besides its sources: a change here makes every bundle again. */
function toolchain() {
  const esbuild = JSON.parse(readFileSync(join(REPO, 'node_modules/esbuild/package.json'), 'utf8')).version;
  return {
    launcher: sha256(readFileSync(fileURLToPath(import.meta.url))),
    tsconfig: sha256(readFileSync(join(REPO, 'tsconfig.json'))),
    esbuild,
  };
}

/** The inputs a bundle recorded, or undefined when there is no bundle. */
function recordedInputs(bundle) {
  let text;
  try {
    text = readFileSync(bundle, 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  }
  const first = text.slice(0, text.indexOf('\n'));
  return first.startsWith(HEADER) ? JSON.parse(first.slice(HEADER.length)) : undefined;
}

/** Whether every file a bundle was made from still has the content it had. */
function isCurrent(recorded, tools) {
  if (!recorded || JSON.stringify(recorded.toolchain) !== JSON.stringify(tools)) return false;
  return Object.entries(recorded.files).every(([path, hash]) => {
    try {
      return sha256(readFileSync(join(REPO, path))) === hash;
    } catch {
      return false;
    }
  });
}

/** esbuild: each module's import.meta.url becomes its own source file's URL, as it is under tsx. */
const sourceUrls = {
  name: 'source-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
      loader: 'ts',
    }));
  },
};

async function bundle(entry, target, tools) {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    // ./: without it, packages: 'external' takes the entry for a package's name.
    entryPoints: [`./${entry}`],
    absWorkingDir: REPO,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    plugins: [sourceUrls],
    metafile: true,
    sourcemap: 'inline',
    write: false,
    logLevel: 'error',
  });
  const files = Object.fromEntries(Object.keys(result.metafile.inputs).map((path) => [path, sha256(readFileSync(join(REPO, path)))]));
  const code = `${HEADER}${JSON.stringify({ toolchain: tools, files })}\n${result.outputFiles[0].text}`;
  mkdirSync(CACHE, { recursive: true });
  // Renamed into place: a launch beside this one reads the old bundle or the new, never half of one.
  const temp = `${target}.${process.pid}.tmp`;
  writeFileSync(temp, code);
  renameSync(temp, target);
}

const [entryArg] = process.argv.splice(2, 1);
if (!entryArg) {
  process.stderr.write('error: no entry given; run node launch.mjs ENTRY.ts [args]\n');
  process.exit(2);
}
const entry = relative(REPO, resolve(entryArg));
const target = join(CACHE, `${entry.replaceAll('/', '+')}.mjs`);
// The entry sees the arguments as under `tsx ENTRY.ts`: argv[1] is the entry, the flags follow.
process.argv[1] = resolve(entryArg);
const tools = toolchain();
let runnable = target;
if (!isCurrent(recordedInputs(target), tools)) {
  try {
    await bundle(entry, target, tools);
  } catch (error) {
    // esbuild has printed what it could not compile, with the file and line.
    if (error.errors) process.exit(1);
    if (!['EACCES', 'EPERM', 'EROFS'].includes(error.code)) throw error;
    runnable = undefined;
  }
}
process.setSourceMapsEnabled(true);
if (runnable) {
  await import(pathToFileURL(runnable).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(resolve(entryArg)).href);
}
