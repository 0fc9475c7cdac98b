/**
 * Opens what a plan's `stream` operations read, when they are applied: Docker's bundle (its
 * binaries, from the tar) or a large overlay file. The plan holds only their names and sizes.
 */
import { createReadStream } from 'node:fs';
import type { OpenStream, StreamEntry, StreamSource } from '../engine/operations.js';
import { bundleEntries } from './docker-bundle.js';

async function* hostFile(source: StreamSource & { from: 'host-file' }): AsyncIterable<StreamEntry> {
  const { path, name, size: _size, from: _from, ...meta } = source;
  yield { type: 'file', path: name, data: createReadStream(path), ...meta };
}

export const openStream: OpenStream = (source) => {
  switch (source.from) {
    case 'docker-bundle':
      return bundleEntries(source);
    case 'host-file':
      return hostFile(source);
    default:
      throw new Error(`unknown stream source: ${(source as { from?: unknown }).from}`);
  }
};
