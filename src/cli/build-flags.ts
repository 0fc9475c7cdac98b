/** The flags of `npm run build-image`, declared once: parser, --help and the README's table come from here. */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA } from '../config/schema.js';
import type { Flag } from './options.js';

/** The repository: the default --out and the image cache are inside it, wherever the command runs from. */
export const REPO_DIR = fileURLToPath(new URL('../..', import.meta.url));
export const IMAGE_CACHE_DIR = join(REPO_DIR, 'image');

export const BUILD_COMMAND = 'npm run build-image --';

/** The flags that set a config key (--name, --board): declared by the key's row in src/config/schema.ts. */
const KEY_FLAGS = SCHEMA.flatMap(({ flag }) => (flag ? [{ name: flag.name, type: 'string' as const, arg: flag.arg, doc: flag.doc }] : []));

export const BUILD_FLAGS = [
  {
    name: 'input',
    type: 'string',
    arg: 'PATH|URL',
    doc: 'stock image: .img, .img.xz, .img.gz, .img.zst or an http(s) URL (default: the image pinned in image/stock.json)',
  },
  { name: 'out', type: 'string', arg: 'DIR', default: join(REPO_DIR, 'out'), doc: 'output directory (default: out/)' },
  { name: 'config', type: 'string', arg: 'FILE', doc: 'JSON build config (keys: docs/config.md)' },
  ...KEY_FLAGS,
  {
    name: 'fleet',
    type: 'string',
    arg: 'N',
    doc: 'N devices from the config: <name>-1.img ... <name>-N.img, each with its own name, MACs, subnet and share, one builder (docs/fleet.md)',
  },
  { name: 'dry-run', type: 'boolean', doc: 'list the operations each step would perform, write nothing' },
  {
    name: 'checksum',
    type: 'boolean',
    doc: 'also write <name>.img.sha256 (per device with --fleet), for an image that travels; --release always does',
  },
  {
    name: 'release',
    type: 'boolean',
    doc: 'also write <name>.img.xz, <name>.bmap (per device with --fleet) and one SHA256SUMS over all of them (reproducible with SOURCE_DATE_EPOCH)',
  },
  {
    name: 'rotate-secrets',
    type: 'boolean',
    doc: 'new CA, certificates and SSH host keys in <out>/secrets instead of reusing them (docs/host-kit.md)',
  },
  { name: 'list-steps', type: 'boolean', doc: 'print each step the build applies, in order, with what it does, and exit' },
] as const satisfies readonly Flag[];
