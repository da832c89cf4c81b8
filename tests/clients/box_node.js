#!/usr/bin/env node
// Drive zipgate's Box dialect with Box's official Node SDK (box-node-sdk 10.x).
//
// Usage: node tests/clients/box_node.js BASE_URL
//   BASE_URL  where zipgate serves the embedded default fixture, e.g. http://127.0.0.1:8080
// The SDK is loaded from tests/clients/node_modules (`npm ci` in tests/clients),
// found relative to this file, so any cwd works and NODE_PATH is not needed.
// python3 (standard library only) lists the zip archives.
//
// Exits 0 when every check passes; otherwise prints each failed check with the
// values it saw and exits 1. Retries are off (maxAttempts: 1), so an error
// answer reaches the script as the server sent it.
'use strict';

const { spawnSync } = require('child_process');
const { createRequire } = require('module');
const path = require('path');

const sdkRequire = createRequire(path.join(__dirname, 'package.json'));
let sdk, networking;
try {
  sdk = sdkRequire('box-node-sdk');
  networking = sdkRequire('box-node-sdk/networking');
} catch (e) {
  console.error(`box_node: cannot load box-node-sdk from ${path.join(__dirname, 'node_modules')} ` +
    `(${e.message}); run \`npm ci\` in tests/clients`);
  process.exit(2);
}
const { BoxClient, BoxDeveloperTokenAuth } = sdk;
const { BaseUrls, BoxRetryStrategy, NetworkSession } = networking;
const { BoxApiError } = sdkRequire('box-node-sdk/box');

const RANDOM_PDF = /^[0-9a-z]{6}\.pdf$/;

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
    `rawBody=${show(ri.rawBody)})`;
}

function describe(e) {
  if (e instanceof BoxApiError) return describeApiError(e);
  const cause = e && e.error ? ` (cause: ${e.error.message || e.error})` : '';
  return `${(e && e.constructor && e.constructor.name) || typeof e}: ${e && e.message}${cause}`;
}

async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

// Lists a zip with python3's zipfile: {names, testzip, heads, text} or {error};
// `heads` maps each file entry to its first 4 bytes, `text` is entry `textOf` as UTF-8.
function listZip(buf, textOf) {
  const code = [
    'import io, json, sys, zipfile',
    'data = sys.stdin.buffer.read()',
    'try:',
    '    zf = zipfile.ZipFile(io.BytesIO(data))',
    '    out = {"names": zf.namelist(), "testzip": zf.testzip(),',
    '           "heads": {n: zf.read(n)[:4].decode("latin-1") for n in zf.namelist() if not n.endswith("/")}}',
    '    if len(sys.argv) > 1 and sys.argv[1] in out["names"]:',
    '        out["text"] = zf.read(sys.argv[1]).decode("utf-8", "replace")',
    'except Exception as e:',
    '    out = {"error": f"{type(e).__name__}: {e}"}',
    'print(json.dumps(out))',
  ].join('\n');
  const args = ['-c', code].concat(textOf ? [textOf] : []);
  const r = spawnSync('python3', args, { input: buf, encoding: 'utf8', env: { ...process.env, PYTHONIOENCODING: 'utf-8', PYTHONUTF8: '1' } });
  if (r.error || r.status !== 0) {
    throw new CheckFailed(`python3 zipfile listing failed: ${r.error ? r.error.message : r.stderr}`);
  }
  return JSON.parse(r.stdout);
}

// box-node-sdk 10.12.0 fills responseInfo.code / requestId / helpUrl with
// JSON.stringify(body.field) (serialization/json.js sdToJson), so a server's
// "code":"not_found" arrives as the 11 characters "not_found" *with* the quotes,
// whatever the server. Undo that one layer of JSON before comparing; a plain
// string (a later SDK without the quirk) passes as it is.
function sdkString(v) {
  if (typeof v === 'string' && v.startsWith('"')) {
    try {
      const parsed = JSON.parse(v);
      if (typeof parsed === 'string') return parsed;
    } catch (_) { /* not JSON: compare as it is */ }
  }
  return v;
}

// `code` null: the SDK gives no body for a failed binary (content) request, so
// only the status is checked there.
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
    if (code === null) return e;
    expect(`${what}: responseInfo.code ${show(code)}`, sdkString(ri.code) === code, describeApiError(e));
    expect(`${what}: responseInfo.body.code ${show(code)}`, ri.body && ri.body.code === code, describeApiError(e));
    // As on Box, the body's request_id and the box-request-id header are two ids.
    const requestId = sdkString(ri.requestId);
    const header = ri.headers['box-request-id'];
    expect(`${what}: requestId is 16 of [0-9a-z]`,
      typeof requestId === 'string' && /^[0-9a-z]{16}$/.test(requestId), describeApiError(e));
    expect(`${what}: box-request-id is 0 + 32 hex`,
      typeof header === 'string' && /^0[0-9a-f]{32}$/.test(header), describeApiError(e));
    expect(`${what}: requestId differs from the box-request-id header`, requestId !== header, describeApiError(e));
    return e;
  }
  throw new CheckFailed(`${what}: expected BoxApiError ${status} ${code}; the call succeeded and returned ${show(result)}`);
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node box_node.js BASE_URL');
    return 2;
  }
  const base = argv[0].replace(/\/+$/, '');
  const alice = makeClient(base, 'alice-token');
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

  await step('1 createZipDownload (12345 + 34325 + folder 1004)', [], async () => {
    const zd = await alice.zipDownloads.createZipDownload({
      items: [
        { type: 'file', id: '12345' },
        { type: 'file', id: '34325' },
        { type: 'folder', id: '1004' },
      ],
      downloadFileName: 'January Financials',
    });
    expect('downloadUrl starts with BASE_URL',
      typeof zd.downloadUrl === 'string' && zd.downloadUrl.startsWith(base + '/'), zd.downloadUrl);
    expect('statusUrl starts with BASE_URL',
      typeof zd.statusUrl === 'string' && zd.statusUrl.startsWith(base + '/'), zd.statusUrl);
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

  await step('2 getZipDownloadStatus before the content is read -> BoxApiError 404 not_found', ['zd'], async () => {
    await expectApiError('status before download',
      () => alice.zipDownloads.getZipDownloadStatus(state.zd.statusUrl), 404, 'not_found');
  });

  await step('3 getZipDownloadContent -> a zip of the two renamed pdfs and Empty/', ['zd'], async () => {
    const stream = await alice.zipDownloads.getZipDownloadContent(state.zd.downloadUrl);
    const buf = await readAll(stream);
    state.contentRead = true;
    expect('content starts with PK\\x03\\x04', buf.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1')),
      buf.subarray(0, 16).toString('hex'));
    const listing = listZip(buf);
    expect('python zipfile opens the archive', !listing.error, listing.error);
    expect('testzip() finds no bad entry', listing.testzip === null, listing.testzip);
    const want = [...state.downloadNames, 'Empty/'].sort();
    expect(`entry names are exactly ${show(want)}`, show([...listing.names].sort()) === show(want), listing.names);
    for (const name of state.downloadNames) {
      expect(`${name} starts with %PDF`, listing.heads[name] === '%PDF', listing.heads[name]);
    }
  });

  await step('4 getZipDownloadStatus after the content -> succeeded, 2 of 2', ['zd', 'contentRead'], async () => {
    const st = await alice.zipDownloads.getZipDownloadStatus(state.zd.statusUrl);
    const got = {
      totalFileCount: st.totalFileCount,
      downloadedFileCount: st.downloadedFileCount,
      skippedFileCount: st.skippedFileCount,
      skippedFolderCount: st.skippedFolderCount,
      state: st.state,
    };
    const want = { totalFileCount: 2, downloadedFileCount: 2, skippedFileCount: 0, skippedFolderCount: 0, state: 'succeeded' };
    expect(`status is ${show(want)}`, show(got) === show(want), got);
  });

  await step('5 second getZipDownloadContent -> BoxApiError 404', ['zd', 'contentRead'], async () => {
    await expectApiError('second content GET', async () => {
      const stream = await alice.zipDownloads.getZipDownloadContent(state.zd.downloadUrl);
      return (await readAll(stream)).length;
    }, 404, null);
  });

  await step('6 downloadZip of folder 1002 (Documents)', [], async () => {
    const stream = await alice.zipDownloads.downloadZip({
      items: [{ type: 'folder', id: '1002' }],
      downloadFileName: 'Documents',
    });
    const overview = 'Documents/\u00dcberblick \u2013 \u65e5\u672c\u8a9e.txt'; // Überblick – 日本語.txt
    const listing = listZip(await readAll(stream), overview);
    expect('python zipfile opens the archive', !listing.error, listing.error);
    expect('testzip() finds no bad entry', listing.testzip === null, listing.testzip);
    for (const want of ['Documents/', 'Documents/Reports/Q1/report.pdf', 'Documents/Empty/', overview]) {
      expect(`the archive has ${show(want)}`, listing.names.includes(want), listing.names);
    }
    expect("the non-ASCII entry contains 'Gr\u00fc\u00dfe'",
      typeof listing.text === 'string' && listing.text.includes('Gr\u00fc\u00dfe'), listing.text);
  });

  await step('7 file id 999999999 -> BoxApiError 404 not_found', [], async () => {
    await expectApiError('unknown file',
      () => alice.zipDownloads.createZipDownload({ items: [{ type: 'file', id: '999999999' }] }),
      404, 'not_found');
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
  console.log(`box_node: ${results.length - failed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

const t0 = process.hrtime.bigint();
main(process.argv.slice(2)).then(
  (rc) => {
    console.error(`box_node: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)}s`);
    process.exit(rc);
  },
  (e) => {
    console.error(`box_node: crashed: ${(e && e.stack) || e}`);
    process.exit(1);
  },
);
