/** docs/config.md, made from the schema. */
import { asConfigFile, resolveConfig } from './load.js';
import { SCHEMA, type Setting, USB_PROTOCOLS } from './schema.js';

/** Escapes pipes so a value stays inside its markdown table cell. */
function cell(value: string): string {
  return value.replaceAll('|', '\\|');
}

function defaultDoc<T>(entry: Setting<T>): string {
  if (!entry.default) return 'unset';
  return 'value' in entry.default ? `\`${JSON.stringify(entry.default.value)}\`` : entry.default.doc;
}

/** The row's doc line, and the flag that sets its key if one does. */
function meaning<T>(entry: Setting<T>): string {
  return entry.flag ? `${entry.doc} \`--${entry.flag.name}\` overrides it.` : entry.doc;
}

/** The whole of docs/config.md; a test keeps the checked-in file equal to it. */
export function renderConfigDoc(): string {
  const rows = SCHEMA.map(
    (entry) => `| \`${entry.key}\` | \`${cell(entry.type.name)}\` | ${cell(defaultDoc(entry))} | ${cell(meaning(entry))} |`,
  );
  const protocols = Object.entries(USB_PROTOCOLS).map(([name, doc]) => `- \`${name}\`: ${doc}`);
  return [
    '# Build configuration',
    '',
    '<!-- Generated from the schema in src/config/schema.ts; regenerate with `npx vitest run -u test/config.test.ts`. -->',
    '',
    'Pass a JSON file with `--config FILE`. Every key is optional; unknown keys are an error.',
    '`--name NAME` overrides `name`, and with it every default derived from it.',
    '',
    '| key | type | default | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
    '## USB protocols',
    '',
    'There is no RNDIS-only choice: the stock g_ether offers RNDIS only alongside CDC-ECM, which is `ecm`.',
    '',
    ...protocols,
    '',
    '## Defaults',
    '',
    'With no config file (and no `--name`) the build uses:',
    '',
    '```json',
    JSON.stringify(asConfigFile(resolveConfig({})), null, 2),
    '```',
    '',
  ].join('\n');
}
