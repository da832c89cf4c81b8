// A minimal zip reader for the Node client scripts, with no packages of its
// own: end of central directory (ZIP64 too), the central directory, each
// local header, stored or deflated data, CRC-32.
'use strict';

const zlib = require('zlib');
const { CheckFailed, expect, show } = require('./box_harness');


const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function u64(buf, at) {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`64-bit field at ${at} too large`);
  return Number(v);
}

// {names, entries: Map name -> Buffer (directories map to an empty Buffer)};
// throws a plain Error on anything malformed.
function readZip(buf) {
  if (buf.length < 22) throw new Error(`${buf.length} bytes: too short for a zip`);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('no end of central directory record');
  let count = buf.readUInt16LE(eocd + 10);
  let cdSize = buf.readUInt32LE(eocd + 12);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || buf.readUInt32LE(loc) !== 0x07064b50) throw new Error('ZIP64 values without a ZIP64 locator');
    const z64 = u64(buf, loc + 8);
    if (buf.readUInt32LE(z64) !== 0x06064b50) throw new Error('ZIP64 locator points at no ZIP64 record');
    count = u64(buf, z64 + 32);
    cdSize = u64(buf, z64 + 40);
    cdOffset = u64(buf, z64 + 48);
  }
  if (cdOffset + cdSize > buf.length) throw new Error(`central directory ${cdOffset}+${cdSize} past the end`);
  const names = [];
  const entries = new Map();
  let at = cdOffset;
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(at) !== 0x02014b50) throw new Error(`central entry ${n}: bad signature at ${at}`);
    const flags = buf.readUInt16LE(at + 8);
    const method = buf.readUInt16LE(at + 10);
    const crc = buf.readUInt32LE(at + 16);
    let compressed = buf.readUInt32LE(at + 20);
    let size = buf.readUInt32LE(at + 24);
    const nameLen = buf.readUInt16LE(at + 28);
    const extraLen = buf.readUInt16LE(at + 30);
    const commentLen = buf.readUInt16LE(at + 32);
    let local = buf.readUInt32LE(at + 42);
    const rawName = buf.subarray(at + 46, at + 46 + nameLen);
    const name = flags & 0x800 ? rawName.toString('utf8') : rawName.toString('latin1');
    // ZIP64 extended information: only the fields saturated above are present, in this order.
    let x = at + 46 + nameLen;
    const extraEnd = x + extraLen;
    while (x + 4 <= extraEnd) {
      const id = buf.readUInt16LE(x);
      const len = buf.readUInt16LE(x + 2);
      if (id === 0x0001) {
        let f = x + 4;
        if (size === 0xffffffff) { size = u64(buf, f); f += 8; }
        if (compressed === 0xffffffff) { compressed = u64(buf, f); f += 8; }
        if (local === 0xffffffff) { local = u64(buf, f); f += 8; }
      }
      x += 4 + len;
    }
    at = extraEnd + commentLen;
    if (buf.readUInt32LE(local) !== 0x04034b50) throw new Error(`${name}: no local header at ${local}`);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const stored = buf.subarray(start, start + compressed);
    if (stored.length !== compressed) throw new Error(`${name}: data runs past the end`);
    let data;
    if (method === 0) data = stored;
    else if (method === 8) data = zlib.inflateRawSync(stored);
    else throw new Error(`${name}: compression method ${method}`);
    if (data.length !== size) throw new Error(`${name}: ${data.length} bytes, the directory says ${size}`);
    if (crc32(data) !== crc) throw new Error(`${name}: CRC-32 mismatch`);
    names.push(name);
    entries.set(name, data);
  }
  return { names, entries };
}

let kept = 0;

// With ZIPGATE_KEEP_ARCHIVES=DIR, writes each archive the script opens there
// as 001.zip, 002.zip, … in the order opened, so a test can compare the
// archives of two runs (the same script against two stores).
function keepArchive(buf) {
  const folder = process.env.ZIPGATE_KEEP_ARCHIVES;
  if (!folder) return;
  kept += 1;
  require('fs').writeFileSync(require('path').join(folder, `${String(kept).padStart(3, '0')}.zip`), buf);
}

function openZip(what, buf) {
  keepArchive(buf);
  expect(`${what}: content starts with PK\\x03\\x04`, buf.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1')),
    buf.subarray(0, 16).toString('hex'));
  try {
    return readZip(buf);
  } catch (e) {
    throw new CheckFailed(`${what}: the zip reader rejects the ${buf.length} bytes: ${e.message}`);
  }
}

module.exports = { crc32, readZip, openZip, keepArchive };
