/**
 * Reads the node paths of a flattened device tree (.dtb), the format U-Boot's `fdt` commands edit:
 * enough to check that a node boot.ini removes exists in the tree the image ships.
 */
import { UserError } from '../errors.js';

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_NOP = 4;
const FDT_END = 9;

const align4 = (offset: number) => (offset + 3) & ~3;

/** Every node's full path (`/`, `/cpus`, `/cpus/cpu@0`, ...), in the blob's order. */
export function deviceTreeNodes(blob: Buffer, name = 'the device tree'): string[] {
  const invalid = (why: string) => new UserError(`${name} is not a valid device tree blob (${why})`);
  if (blob.length < 40 || blob.readUInt32BE(0) !== FDT_MAGIC) throw invalid('no FDT header');
  const totalSize = blob.readUInt32BE(4);
  const structStart = blob.readUInt32BE(8);
  const structSize = blob.readUInt32BE(36);
  const structEnd = structStart + structSize;
  if (totalSize > blob.length || structEnd > totalSize) throw invalid('truncated');

  const paths: string[] = [];
  const stack: string[] = [];
  let offset = structStart;
  while (offset + 4 <= structEnd) {
    const token = blob.readUInt32BE(offset);
    offset += 4;
    if (token === FDT_BEGIN_NODE) {
      const end = blob.indexOf(0, offset);
      if (end < 0 || end >= structEnd) throw invalid('unterminated node name');
      const nodeName = blob.toString('latin1', offset, end);
      offset = align4(end + 1);
      // The root node's name is empty; its children hang off "/".
      const parent = stack.length === 0 ? '' : stack[stack.length - 1];
      const path = stack.length === 0 ? '/' : `${parent === '/' ? '' : parent}/${nodeName}`;
      stack.push(path);
      paths.push(path);
    } else if (token === FDT_END_NODE) {
      if (stack.pop() === undefined) throw invalid('unbalanced nodes');
    } else if (token === FDT_PROP) {
      if (offset + 8 > structEnd) throw invalid('truncated property');
      const length = blob.readUInt32BE(offset);
      offset = align4(offset + 8 + length);
    } else if (token === FDT_END) {
      if (stack.length !== 0) throw invalid('unbalanced nodes');
      return paths;
    } else if (token !== FDT_NOP) {
      throw invalid(`unknown token ${token}`);
    }
  }
  throw invalid('no end token');
}
