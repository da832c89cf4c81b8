#!/usr/bin/env node
// Drive zipgate's Box dialect with Box's generated TypeScript SDK
// (box-typescript-sdk-gen 1.19.1), plain CommonJS on its compiled lib/.
//
// Usage: node tests/clients/box_typescript.js BASE_URL
//   BASE_URL  where zipgate serves the embedded default fixture, e.g. http://127.0.0.1:8080
// The SDK is loaded from tests/clients/node_modules (`npm ci` in tests/clients),
// found relative to this file, so any cwd works and NODE_PATH is not needed.
// The zip archives are listed by a small central-directory reader below (Node's
// zlib inflates; no other package), which also checks every entry's CRC-32.
// The checks and the step runner shared with box_node.js are in box_harness.js.
//
// Exits 0 when every check passes; otherwise prints each failed check with the
// values it saw and exits 1. Retries are off (maxAttempts: 1, which also skips
// the SDK's refresh on 401; maxRetriesOnException: 0), so an error answer
// reaches the script as the server sent it.
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const {
  CheckFailed, show, expect, readAll, loadPackages, steps, run, boxSdk,
  expectReportPdfConflict, expectZipStatus, expectDocumentsZip,
} = require('./box_harness');

const { classes, SDK_VERSION } = loadPackages('box_typescript', 'box-typescript-sdk-gen', (sdkRequire) => {
  const { BoxClient, BoxDeveloperTokenAuth } = sdkRequire('box-typescript-sdk-gen');
  const { NetworkSession } = sdkRequire('box-typescript-sdk-gen/networking/network.generated');
  const { BaseUrls } = sdkRequire('box-typescript-sdk-gen/networking/baseUrls.generated');
  const { BoxRetryStrategy } = sdkRequire('box-typescript-sdk-gen/networking/retries.generated');
  const { BoxApiError } = sdkRequire('box-typescript-sdk-gen/box/errors');
  // The package's `exports` hide package.json: read it next to the resolved main.
  const main = sdkRequire.resolve('box-typescript-sdk-gen'); // .../box-typescript-sdk-gen/lib/index.js
  return {
    classes: { BoxClient, BoxDeveloperTokenAuth, NetworkSession, BaseUrls, BoxRetryStrategy, BoxApiError },
    SDK_VERSION: JSON.parse(fs.readFileSync(path.join(path.dirname(main), '..', 'package.json'), 'utf8')).version,
  };
});
const { makeClient, describe, expectApiError } = boxSdk(classes, {
  describeHeaders: ['www-authenticate'],
  // `code` null in expectApiError: Box's gateway answer (a 401), whose body is empty.
  nullCode: 'empty-body',
  bodyRequestId: true,
});

// --- A minimal zip reader: end of central directory (ZIP64 too), the central
// directory, each local header, stored or deflated data, CRC-32. -------------

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

function openZip(what, buf) {
  expect(`${what}: content starts with PK\\x03\\x04`, buf.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1')),
    buf.subarray(0, 16).toString('hex'));
  try {
    return readZip(buf);
  } catch (e) {
    throw new CheckFailed(`${what}: the zip reader rejects the ${buf.length} bytes: ${e.message}`);
  }
}

async function main(base) {
  console.error(`box-typescript-sdk-gen ${SDK_VERSION}`);
  const alice = makeClient(base, 'alice-token');
  const stranger = makeClient(base, 'wrong-token');
  const { state, step, report } = steps('box_typescript', describe);

  await step('0 the SDK is box-typescript-sdk-gen 1.19.1', [], async () => {
    expect('package version 1.19.1', SDK_VERSION === '1.19.1', SDK_VERSION);
  });

  await step("1 createZipDownload, Box's reference request (12345 + 34325 + folder 45678 'Q1')", [], async () => {
    const zd = await alice.zipDownloads.createZipDownload({
      items: [
        { type: 'file', id: '12345' },
        { type: 'file', id: '34325' },
        { type: 'folder', id: '45678' },
      ],
      downloadFileName: 'January Financials',
    });
    const downloadNames = expectReportPdfConflict(zd, base);
    expect('downloadUrl and statusUrl differ', zd.downloadUrl !== zd.statusUrl, zd.rawData);
    state.zd = zd;
    state.downloadNames = downloadNames;
  });

  await step('2 getZipDownloadContent -> the two renamed pdfs, Q1/report.pdf, Q1/summary.txt', ['zd'], async () => {
    const buf = await readAll(await alice.zipDownloads.getZipDownloadContent(state.zd.downloadUrl));
    state.contentRead = true;
    const zip = openZip('content', buf);
    const want = [...state.downloadNames, 'Q1/', 'Q1/report.pdf', 'Q1/summary.txt'].sort();
    expect(`entry names are exactly ${show(want)}`, show([...zip.names].sort()) === show(want), zip.names);
    for (const name of [...state.downloadNames, 'Q1/report.pdf']) {
      const head = zip.entries.get(name).subarray(0, 4).toString('latin1');
      expect(`${name} starts with %PDF`, head === '%PDF', head);
    }
    state.fileEntries = zip.names.filter((n) => !n.endsWith('/')).length;
  });

  await step('3 getZipDownloadStatus after the content -> succeeded, every file downloaded', ['zd', 'contentRead', 'fileEntries'], async () => {
    const st = await alice.zipDownloads.getZipDownloadStatus(state.zd.statusUrl);
    const n = state.fileEntries;
    expectZipStatus(st,
      { totalFileCount: n, downloadedFileCount: n, skippedFileCount: 0, skippedFolderCount: 0, state: 'succeeded' },
      ` (${n}: the file entries packed)`);
  });

  await step('4 downloadZip of folder 1002 (Documents)', [], async () => {
    const stream = await alice.zipDownloads.downloadZip({
      items: [{ type: 'folder', id: '1002' }],
      downloadFileName: 'Documents',
    });
    const zip = openZip('downloadZip', await readAll(stream));
    expectDocumentsZip(zip.names, (name) => zip.entries.get(name).toString('utf8'));
  });

  await step('5 file id 999999999 -> BoxApiError 404 not_found', [], async () => {
    await expectApiError('unknown file',
      () => alice.zipDownloads.createZipDownload({ items: [{ type: 'file', id: '999999999' }] }),
      404, 'not_found');
  });

  await step("6 token 'wrong-token' -> BoxApiError 401 with an empty body and the Bearer challenge", [], async () => {
    const e = await expectApiError('wrong token',
      () => stranger.zipDownloads.createZipDownload({ items: [{ type: 'file', id: '12345' }] }),
      401, null);
    const challenge = e.responseInfo.headers['www-authenticate'] || '';
    expect('www-authenticate is Bearer realm="Service", error="invalid_token", ...',
      challenge.startsWith('Bearer realm="Service", error="invalid_token"'), e.responseInfo.headers);
  });

  return report();
}

run('box_typescript', main);
