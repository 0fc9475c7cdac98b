/**
 * A tiny arm64 container image in `docker save` format (what `docker load -i` reads), made from
 * busybox-static's binary: one layer with /bin/busybox and the applets the boot check uses.
 * Built here rather than pulled: the test has no registry to pull from.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import tar from 'tar-stream';

const APPLETS = ['sh', 'cat', 'dd', 'echo', 'sleep', 'uname', 'ls'];
/** Fixed times, so the same busybox always gives the same image id. */
const MTIME = new Date(0);

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function packTar(add: (pack: tar.Pack) => void): Promise<Buffer> {
  const pack = tar.pack();
  add(pack);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Writes the image archive for `tag` to `out`. */
export async function writeTinyImage(busybox: string, out: string, tag: string): Promise<void> {
  const binary = await readFile(busybox);
  const layer = await packTar((pack) => {
    pack.entry({ name: 'bin/', type: 'directory', mode: 0o755, mtime: MTIME });
    pack.entry({ name: 'bin/busybox', mode: 0o755, mtime: MTIME }, binary);
    for (const applet of APPLETS) pack.entry({ name: `bin/${applet}`, type: 'symlink', linkname: 'busybox', mode: 0o777, mtime: MTIME });
  });
  const layerId = sha256(layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'arm64',
      os: 'linux',
      created: MTIME.toISOString(),
      config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerId}`] },
      history: [{ created: MTIME.toISOString(), created_by: 'odroid-buildx-image boot test: busybox-static' }],
    }),
  );
  const configName = `${sha256(config)}.json`;
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: [`${layerId}/layer.tar`] }]));
  const archive = await packTar((pack) => {
    pack.entry({ name: `${layerId}/`, type: 'directory', mode: 0o755, mtime: MTIME });
    pack.entry({ name: `${layerId}/layer.tar`, mode: 0o644, mtime: MTIME }, layer);
    pack.entry({ name: configName, mode: 0o644, mtime: MTIME }, config);
    pack.entry({ name: 'manifest.json', mode: 0o644, mtime: MTIME }, manifest);
  });
  await writeFile(out, archive);
}
