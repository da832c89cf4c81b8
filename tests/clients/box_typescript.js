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
const { openZip } = require('./zip_reader');
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
