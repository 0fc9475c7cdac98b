/** ifupdown's interfaces(5) files, as text. */

/**
 * `name` brought up only when the kernel announces it (`allow-hotplug`), not at boot (`auto`,
 * `allow-auto`, which hold the network target until DHCP answers or gives up): its name leaves
 * every auto line, and one allow-hotplug line stands in for them. Unchanged text when there is
 * nothing to change.
 */
export function hotplugOnly(interfaces: string, name: string): string {
  const eol = /\r\n/.test(interfaces) ? '\r\n' : '\n';
  const lines = interfaces.split(/\r?\n/);
  const hotplugLine = `allow-hotplug ${name}`;
  let hotplug = lines.some((line) => /^\s*allow-hotplug\s/.test(line) && line.trim().split(/\s+/).includes(name));
  let changed = false;
  const edited = lines.flatMap((line) => {
    const match = /^(\s*)(auto|allow-auto)\s+(.*?)\s*$/.exec(line);
    const names = match ? match[3].split(/\s+/) : [];
    if (!match || !names.includes(name)) return [line];
    changed = true;
    const rest = names.filter((n) => n !== name);
    const replacement = hotplug ? [] : [`${match[1]}${hotplugLine}`];
    hotplug = true;
    return rest.length > 0 ? [`${match[1]}${match[2]} ${rest.join(' ')}`, ...replacement] : replacement;
  });
  return changed ? edited.join(eol) : interfaces;
}
