/** NetworkManager keyfiles (INI), as text. */
import { getIniKey, setIniKey } from './ini.js';
import { escapeRegExp } from './text.js';

/** Marks an autoconnect=false as this tool's (the power step's), so switching back undoes only that. */
const NM_NOTE = '# autoconnect=false set by odroid-buildx-image (power profile): boot does not wait for eth0';

/**
 * autoconnect off (`on` false) or back on: NetworkManager-wait-online waits until every profile
 * that autoconnects and whose device is there has been tried, DHCP included; no per-profile switch
 * short of autoconnect takes one out. Switching back on undoes only a change the note marks.
 */
export function nmAutoconnect(keyfile: string, on: boolean): string {
  const noted = keyfile.split(/\r?\n/).includes(NM_NOTE);
  if (on) {
    if (!noted) return keyfile;
    return setIniKey(keyfile.replace(new RegExp(`^${escapeRegExp(NM_NOTE)}\r?\n`, 'm'), ''), 'connection', 'autoconnect', 'true');
  }
  if (noted || getIniKey(keyfile, 'connection', 'autoconnect') === 'false') return keyfile;
  const eol = /\r\n/.test(keyfile) ? '\r\n' : '\n';
  const withNote = keyfile.replace(/^\[connection\][^\S\r\n]*\r?\n/m, (header) => `${header}${NM_NOTE}${eol}`);
  return setIniKey(withNote, 'connection', 'autoconnect', 'false');
}
