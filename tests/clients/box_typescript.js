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
//
// Exits 0 when every check passes; otherwise prints each failed check with the
// values it saw and exits 1. Retries are off (maxAttempts: 1, which also skips
// the SDK's refresh on 401; maxRetriesOnException: 0), so an error answer
// reaches the script as the server sent it.
'use strict';

const fs = require('fs');
const { createRequire } = require('module');
const path = require('path');
const zlib = require('zlib');

const sdkRequire = createRequire(path.join(__dirname, 'package.json'));
let BoxClient, BoxDeveloperTokenAuth, NetworkSession, BaseUrls, BoxRetryStrategy, BoxApiError, SDK_VERSION;
try {
  ({ BoxClient, BoxDeveloperTokenAuth } = sdkRequire('box-typescript-sdk-gen'));
  ({ NetworkSession } = sdkRequire('box-typescript-sdk-gen/networking/network.generated'));
  ({ BaseUrls } = sdkRequire('box-typescript-sdk-gen/networking/baseUrls.generated'));
  ({ BoxRetryStrategy } = sdkRequire('box-typescript-sdk-gen/networking/retries.generated'));
  ({ BoxApiError } = sdkRequire('box-typescript-sdk-gen/box/errors'));
  // The package's `exports` hide package.json: read it next to the resolved main.
  const main = sdkRequire.resolve('box-typescript-sdk-gen'); // .../box-typescript-sdk-gen/lib/index.js
  SDK_VERSION = JSON.parse(fs.readFileSync(path.join(path.dirname(main), '..', 'package.json'), 'utf8')).version;
} catch (e) {
  console.error(`box_typescript: cannot load box-typescript-sdk-gen from ${path.join(__dirname, 'node_modules')} ` +
    `(${e.message}); run \`npm ci\` in tests/clients`);
  process.exit(2);
}

const RANDOM_PDF = /^[0-9a-z]{6}\.pdf$/;
const BODY_REQUEST_ID = /^[0-9a-z]{16}$/;
const HEADER_REQUEST_ID = /^0[0-9a-f]{32}$/;

class CheckFailed extends Error {}

function show(v) {
  try {
    return JSON.stringify(v);
  } catch (_) {
    return String(v);
  }
}

function expect(what, ok, actual) {
  if (!ok) throw new CheckFailed(`${what}; actual: ${show(actual)}`);
}

function makeClient(base, token) {
  return new BoxClient({
    auth: new BoxDeveloperTokenAuth({ token }),
    networkSession: new NetworkSession({
      baseUrls: new BaseUrls({ baseUrl: base, uploadUrl: base + '/api', oauth2Url: base + '/oauth2' }),
      retryStrategy: new BoxRetryStrategy({ maxAttempts: 1, maxRetriesOnException: 0 }),
    }),
  });
}

function describeApiError(e) {
  const ri = e.responseInfo || {};
  return `BoxApiError(statusCode=${show(ri.statusCode)}, code=${show(ri.code)}, ` +
    `requestId=${show(ri.requestId)}, box-request-id=${show((ri.headers || {})['box-request-id'])}, ` +
    `www-authenticate=${show((ri.headers || {})['www-authenticate'])}, rawBody=${show(ri.rawBody)})`;
}

function describe(e) {
  if (e instanceof BoxApiError) return describeApiError(e);
  const cause = e && e.error ? ` (cause: ${e.error.message || e.error})` : '';
  return `${(e && e.constructor && e.constructor.name) || typeof e}: ${e && e.message}${cause}`;
}

// The SDK's ByteStream (node-fetch's body, a Node Readable), read to the end.
async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

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

// box-typescript-sdk-gen 1.19.1 fills responseInfo.code / requestId / helpUrl
// with sdToJson(body.field), i.e. JSON.stringify, so "not_found" arrives *with*
// its quotes, whatever the server. Undo that one layer of JSON before comparing;
// a plain string (an SDK without the quirk) passes as it is.
function sdkString(v) {
  if (typeof v === 'string' && v.startsWith('"')) {
    try {
      const parsed = JSON.parse(v);
      if (typeof parsed === 'string') return parsed;
    } catch (_) { /* not JSON: compare as it is */ }
  }
  return v;
}

// `code` null: Box's gateway answer (a 401), whose body is empty.
async function expectApiError(what, call, status, code) {
  let result;
  try {
    result = await call();
  } catch (e) {
    if (!(e instanceof BoxApiError)) {
      throw new CheckFailed(`${what}: expected BoxApiError ${status} ${code}; threw ${describe(e)}`);
    }
    const ri = e.responseInfo;
    expect(`${what}: responseInfo.statusCode ${status}`, ri.statusCode === status, describeApiError(e));
    const header = ri.headers['box-request-id'];
    expect(`${what}: box-request-id is 0 + 32 hex`,
      typeof header === 'string' && HEADER_REQUEST_ID.test(header), describeApiError(e));
    if (code === null) {
      expect(`${what}: no body`, ri.rawBody === '' && ri.body === undefined && ri.requestId === undefined,
        describeApiError(e));
      return e;
    }
    expect(`${what}: responseInfo.code ${show(code)}`, sdkString(ri.code) === code, describeApiError(e));
    expect(`${what}: responseInfo.body.code ${show(code)}`, ri.body && ri.body.code === code, describeApiError(e));
    // As on Box, the body's request_id and the box-request-id header are two ids.
    const requestId = sdkString(ri.requestId);
    expect(`${what}: requestId is 16 of [0-9a-z]`,
      typeof requestId === 'string' && BODY_REQUEST_ID.test(requestId), describeApiError(e));
    expect(`${what}: requestId is the body's request_id`, ri.body && ri.body.request_id === requestId,
      describeApiError(e));
    expect(`${what}: requestId differs from the box-request-id header`, requestId !== header, describeApiError(e));
    return e;
  }
  throw new CheckFailed(`${what}: expected BoxApiError ${status} ${code}; the call succeeded and returned ${show(result)}`);
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node box_typescript.js BASE_URL');
    return 2;
  }
  const base = argv[0].replace(/\/+$/, '');
  console.error(`box-typescript-sdk-gen ${SDK_VERSION}`);
  const alice = makeClient(base, 'alice-token');
  const stranger = makeClient(base, 'wrong-token');
  const state = {};
  const results = []; // [label, error or null]

  async function step(label, needs, fn) {
    const missing = needs.filter((n) => !(n in state));
    if (missing.length) {
      results.push([label, `skipped: needs ${missing.join(', ')} from an earlier step`]);
      return;
    }
    try {
      await fn();
      results.push([label, null]);
    } catch (e) {
      results.push([label, e instanceof CheckFailed ? e.message : `unexpected ${describe(e)}`]);
    }
  }

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
    expect('downloadUrl starts with BASE_URL',
      typeof zd.downloadUrl === 'string' && zd.downloadUrl.startsWith(base + '/'), zd.downloadUrl);
    expect('statusUrl starts with BASE_URL',
      typeof zd.statusUrl === 'string' && zd.statusUrl.startsWith(base + '/'), zd.statusUrl);
    expect('downloadUrl and statusUrl differ', zd.downloadUrl !== zd.statusUrl, zd.rawData);
    const expires = zd.expiresAt && zd.expiresAt.value;
    expect('expiresAt parsed to a valid Date',
      expires instanceof Date && !Number.isNaN(expires.getTime()), zd.rawData && zd.rawData.expires_at);
    const conflicts = zd.nameConflicts;
    expect('nameConflicts is one group', Array.isArray(conflicts) && conflicts.length === 1, zd.rawData);
    const group = conflicts[0];
    expect('the conflict group has two entries', Array.isArray(group) && group.length === 2, group);
    const ids = group.map((c) => c.id).sort();
    expect('conflict ids are {12345, 34325}', show(ids) === show(['12345', '34325']), group);
    expect('conflict types are file', group.every((c) => c.type === 'file'), group);
    expect('originalName is report.pdf', group.every((c) => c.originalName === 'report.pdf'), group);
    expect('downloadName matches ^[0-9a-z]{6}\\.pdf$',
      group.every((c) => typeof c.downloadName === 'string' && RANDOM_PDF.test(c.downloadName)), group);
    expect('download names are distinct', group[0].downloadName !== group[1].downloadName, group);
    state.zd = zd;
    state.downloadNames = group.map((c) => c.downloadName);
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
    const got = {
      totalFileCount: st.totalFileCount,
      downloadedFileCount: st.downloadedFileCount,
      skippedFileCount: st.skippedFileCount,
      skippedFolderCount: st.skippedFolderCount,
      state: st.state,
    };
    const n = state.fileEntries;
    const want = { totalFileCount: n, downloadedFileCount: n, skippedFileCount: 0, skippedFolderCount: 0, state: 'succeeded' };
    expect(`status is ${show(want)} (${n}: the file entries packed)`, show(got) === show(want), got);
  });

  await step('4 downloadZip of folder 1002 (Documents)', [], async () => {
    const stream = await alice.zipDownloads.downloadZip({
      items: [{ type: 'folder', id: '1002' }],
      downloadFileName: 'Documents',
    });
    const zip = openZip('downloadZip', await readAll(stream));
    const overview = 'Documents/\u00dcberblick \u2013 \u65e5\u672c\u8a9e.txt'; // Überblick – 日本語.txt
    for (const want of ['Documents/', 'Documents/Reports/Q1/report.pdf', 'Documents/Empty/', overview]) {
      expect(`the archive has ${show(want)}`, zip.names.includes(want), zip.names);
    }
    const text = zip.entries.get(overview).toString('utf8');
    expect("the non-ASCII entry contains 'Gr\u00fc\u00dfe'", text.includes('Gr\u00fc\u00dfe'), text);
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

  let failed = 0;
  for (const [label, error] of results) {
    if (error === null) {
      console.log(`ok    ${label}`);
    } else {
      failed += 1;
      console.log(`FAIL  ${label}\n      ${error}`);
    }
  }
  console.log(`box_typescript: ${results.length - failed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

const t0 = process.hrtime.bigint();
main(process.argv.slice(2)).then(
  (rc) => {
    console.error(`box_typescript: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)}s`);
    process.exit(rc);
  },
  (e) => {
    console.error(`box_typescript: crashed: ${(e && e.stack) || e}`);
    process.exit(1);
  },
);
