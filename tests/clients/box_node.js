#!/usr/bin/env node
// Drive zipgate's Box dialect with Box's official Node SDK (box-node-sdk 10.x).
//
// Usage: node tests/clients/box_node.js BASE_URL
//   BASE_URL  where zipgate serves the embedded default fixture, e.g. http://127.0.0.1:8080
// The SDK is loaded from tests/clients/node_modules (`npm ci` in tests/clients),
// found relative to this file, so any cwd works and NODE_PATH is not needed.
// python3 (standard library only) lists the zip archives. The checks and the
// step runner shared with box_typescript.js are in box_harness.js.
//
// Exits 0 when every check passes; otherwise prints each failed check with the
// values it saw and exits 1. Retries are off (maxAttempts: 1), so an error
// answer reaches the script as the server sent it.
'use strict';

const { spawnSync } = require('child_process');
const { keepArchive } = require('./zip_reader');
const {
  CheckFailed, show, expect, readAll, loadPackages, steps, run, boxSdk,
  expectReportPdfConflict, expectZipStatus, DOCUMENTS_OVERVIEW, expectDocumentsZip,
} = require('./box_harness');

const { makeClient, describe, expectApiError } = boxSdk(loadPackages('box_node', 'box-node-sdk', (sdkRequire) => {
  const { BoxClient, BoxDeveloperTokenAuth } = sdkRequire('box-node-sdk');
  const { BaseUrls, BoxRetryStrategy, NetworkSession } = sdkRequire('box-node-sdk/networking');
  const { BoxApiError } = sdkRequire('box-node-sdk/box');
  return { BoxClient, BoxDeveloperTokenAuth, NetworkSession, BaseUrls, BoxRetryStrategy, BoxApiError };
}), {
  // `code` null in expectApiError: the SDK gives no body for a failed binary
  // (content) request, so only the status is checked there.
  nullCode: 'status-only',
});

// Lists a zip with python3's zipfile: {names, testzip, heads, text} or {error};
// `heads` maps each file entry to its first 4 bytes, `text` is entry `textOf` as UTF-8.
function listZip(buf, textOf) {
  keepArchive(buf);
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

async function main(base) {
  const alice = makeClient(base, 'alice-token');
  const { state, step, report } = steps('box_node', describe);

  await step('1 createZipDownload (12345 + 34325 + folder 1004)', [], async () => {
    const zd = await alice.zipDownloads.createZipDownload({
      items: [
        { type: 'file', id: '12345' },
        { type: 'file', id: '34325' },
        { type: 'folder', id: '1004' },
      ],
      downloadFileName: 'January Financials',
    });
    state.downloadNames = expectReportPdfConflict(zd, base);
    state.zd = zd;
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
    expectZipStatus(st,
      { totalFileCount: 2, downloadedFileCount: 2, skippedFileCount: 0, skippedFolderCount: 0, state: 'succeeded' });
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
    const listing = listZip(await readAll(stream), DOCUMENTS_OVERVIEW);
    expect('python zipfile opens the archive', !listing.error, listing.error);
    expect('testzip() finds no bad entry', listing.testzip === null, listing.testzip);
    expectDocumentsZip(listing.names, () => listing.text);
  });

  await step('7 file id 999999999 -> BoxApiError 404 not_found', [], async () => {
    await expectApiError('unknown file',
      () => alice.zipDownloads.createZipDownload({ items: [{ type: 'file', id: '999999999' }] }),
      404, 'not_found');
  });

  await step('8 an item made unreadable before the download is skipped and counted in the status', [], async () => {
    // A fault rule on the create: 12346 (Q1/summary.txt) is unreadable once the download starts.
    const rule = { match: { dialect: 'box', method: 'POST' }, times: 1, job: { unreadable: ['12346'] } };
    const added = await fetch(`${base}/_zipgate/faults`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(rule),
    });
    expect('the fault rule is added', added.status === 201, added.status);
    const zd = await alice.zipDownloads.createZipDownload({ items: [{ type: 'folder', id: '45678' }] });
    const listing = listZip(await readAll(await alice.zipDownloads.getZipDownloadContent(zd.downloadUrl)));
    expect('summary.txt is left out', show([...listing.names].sort()) === show(['Q1/', 'Q1/report.pdf']), listing.names);
    const st = await alice.zipDownloads.getZipDownloadStatus(zd.statusUrl);
    expectZipStatus(st,
      { totalFileCount: 2, downloadedFileCount: 1, skippedFileCount: 1, skippedFolderCount: 0, state: 'succeeded' });
  });

  return report();
}

run('box_node', main);
