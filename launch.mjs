#!/usr/bin/env node
/**
 * odroid-buildx-image COMMAND [args]: the package's bin, and what `npm run build-image`, `inspect`
 * and `flash` run (`node launch.mjs build|inspect|flash`; tests and the bench also pass ENTRY.ts).
 *
 * tsx transpiles every module through loader hooks on every start (~1.9 s of CPU before a build
 * begins); the same code bundled ahead by esbuild starts in ~0.65 s. So the entry is bundled once
 * into .cache/launch/ and the bundle runs in this process, until a source changes: the bundle
 * records the sha256 of every file it was made from (and of this launcher, tsconfig.json and
 * esbuild's version), and is made again when any differs. The packages in node_modules stay
 * outside the bundle (they load their WASM beside themselves), and every module's
 * `import.meta.url` is its source file's, as under tsx, written relative to the bundle: a copied or
 * renamed checkout reads its own templates/, overlays/ and image/, never the original's. Where the
 * cache cannot be written (a checkout that another user owns), the entry runs through tsx. esbuild
 * and tsx are runtime dependencies: `npm ci --omit=dev` gives a tool that starts.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
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

/**
 * esbuild: each module's import.meta.url becomes its own source file's URL, as it is under tsx,
 * made from its path relative to the bundle (in .cache/launch/ of the same checkout), so that the
 * bundle holds no absolute path and serves the checkout it lies in, copied or moved.
 */
const sourceUrls = {
  name: 'source-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      const fromBundle = relative(CACHE, args.path).split(sep).map(encodeURIComponent).join('/');
      const url = `new URL(${JSON.stringify(fromBundle)}, import.meta.url).href`;
      return { contents: readFileSync(args.path, 'utf8').replaceAll('import.meta.url', url), loader: 'ts' };
    });
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

const PACKAGE = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
const [BIN] = Object.keys(PACKAGE.bin);
/** The commands, their entries and what they do. */
const COMMANDS = {
  build: ['build.ts', 'build a builder image from the stock one (npm run build-image)'],
  inspect: ['src/cli/inspect-command.ts', 'say what an image is and which steps it carries (npm run inspect)'],
  flash: ['src/cli/flash-command.ts', 'write an image to a card and verify it (npm run flash)'],
};
const USAGE = [
  `usage: ${BIN} COMMAND [flags]   (${BIN} COMMAND --help lists its flags)`,
  ...Object.entries(COMMANDS).map(([name, [, doc]]) => `  ${name.padEnd(9)} ${doc}`),
  `  --version print the version (also after a command)`,
].join('\n');

/** A mistake on the command line: one line, exit status 2. */
function usageError(message) {
  process.stderr.write(`error: ${message}; see ${BIN} --help\n`);
  process.exit(2);
}

/**
 * `npm run` starts a script in the package's directory; the user's relative paths are relative to
 * the directory they typed the command in, which npm passes as INIT_CWD. Only for this package's
 * own scripts: a launcher that a test (under `npm test`) starts keeps the directory it was given.
 */
function userDirectory() {
  const { INIT_CWD, npm_lifecycle_script } = process.env;
  const ourScript = npm_lifecycle_script?.startsWith('node launch.mjs ') && process.cwd() === REPO;
  return ourScript && INIT_CWD ? INIT_CWD : undefined;
}

const [word] = process.argv.splice(2, 1);
if (word === undefined) usageError(`no command given; expected ${Object.keys(COMMANDS).join(', ')}`);
if (word === '--help' || word === '-h') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const flags = process.argv.slice(2);
const beforeDashes = flags.includes('--') ? flags.slice(0, flags.indexOf('--')) : flags;
if (word === '--version' || (Object.hasOwn(COMMANDS, word) && beforeDashes.includes('--version'))) {
  process.stdout.write(`${BIN} ${PACKAGE.version}\n`);
  process.exit(0);
}
let entryPath;
if (Object.hasOwn(COMMANDS, word)) entryPath = join(REPO, COMMANDS[word][0]);
else if (word.endsWith('.ts')) entryPath = resolve(word);
else usageError(`unknown command ${JSON.stringify(word)}; expected ${Object.keys(COMMANDS).join(', ')}`);
const entry = relative(REPO, entryPath);
const target = join(CACHE, `${entry.replaceAll('/', '+')}.mjs`);
// The entry sees the arguments as under `tsx ENTRY.ts`: argv[1] is the entry, the flags follow.
process.argv[1] = entryPath;
const userDir = userDirectory();
if (userDir) process.chdir(userDir);
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
  // tsx looks for tsconfig.json from the working directory, which is the user's now.
  register({ tsconfig: join(REPO, 'tsconfig.json') });
  await import(pathToFileURL(entryPath).href);
}
