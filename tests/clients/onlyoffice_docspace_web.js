#!/usr/bin/env node
// Drive zipgate's ONLYOFFICE dialect in its DocSpace flavour the way
// DocSpace's own web client (ONLYOFFICE/DocSpace-client) downloads a selection:
// - packages/shared/api/client.ts + axiosClient.ts: axios with baseURL
//   `<origin>/api/2.0`, JSON, cookie credentials (the `asc_auth_key` cookie;
//   `withCredentials: true`), every answer unwrapped to `response.data.response`;
// - packages/client/src/store/DialogsStore.js: the Download dialog sends the
//   files as {key, value} objects *in fileIds*, folders as plain ids;
//   FilesActionsStore.downloadAction (plain multi-select) sends plain ids;
// - packages/shared/api/files/index.ts downloadFiles: PUT
//   /files/fileops/bulkdownload {fileIds, folderIds, returnSingleOperation: true};
// - FilesActionsStore.js: reject on res[0].error; if not `finished && url`,
//   UploadDataStore.loopFilesOperations polls getOperationProgress
//   (packages/shared/utils/getOperationProgress.ts: GET /files/fileops?id=,
//   once a second; rejects on an empty list or a non-empty error) until
//   finished; then openUrl(item.url): the browser navigates to the absolute url.
// Here the poll runs every 50 ms (at most 50 polls) to keep the test fast.
// See /work/oo-docspace.md section 9 (and 5 for the operation's fields).
// Usage: node tests/clients/onlyoffice_docspace_web.js BASE_URL
//   BASE_URL  a zipgate serving the embedded default fixture with
//             `--set onlyoffice.flavour=docspace`
// The checks and the step runner are box_harness.js's.
'use strict';
const { openZip } = require('./zip_reader');
const { CheckFailed, expect, loadPackages, show, steps, run } = require('./box_harness');

const axios = loadPackages('onlyoffice_docspace_web', 'axios', (sdkRequire) => sdkRequire('axios'));

const NAME = 'onlyoffice_docspace_web';
const COOKIE = 'asc_auth_key=alice-token';
const STALE_COOKIE = 'asc_auth_key=stale-token';
const POLL_EVERY_MS = 50; // DocSpace-client: 1000
const MAX_POLLS = 50;
// What a browser sends when openUrl navigates to the archive.
const NAVIGATION_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Fixture contents (fixtures/default.json).
const OVERVIEW_DOCX = '\u00dcberblick \u2013 \u65e5\u672c\u8a9e.docx'; // Überblick – 日本語.docx
const OVERVIEW_TEXT = 'Gr\u00fc\u00dfe aus K\u00f6ln \u2013 \u3053\u3093\u306b\u3061\u306f\u4e16\u754c\n';
const NOTES_TEXT = '# Notes\n\n- ship the zip\n- test every reader\n';
const SUMMARY_TEXT = 'Q1 summary: revenue up 4%, costs flat.\n';

// --- The API client, as packages/shared/api/client.ts sets it up. ------------

// An error answer, kept whole so the step can show what the server sent.
class ApiError extends Error {
  constructor(request, response) {
    super(`${request.method.toUpperCase()} ${request.url} answered ${response.status}: ${show(response.data)}`);
    this.response = response;
  }
}

function apiClient(base, cookie) {
  const client = axios.create({
    baseURL: `${base}/api/2.0`,
    responseType: 'json',
    headers: { 'Content-Type': 'application/json', Cookie: cookie },
    withCredentials: true, // a no-op in Node: the Cookie header above is what a browser would add
    validateStatus: () => true,
  });
  // client.ts request(): the promise resolves to response.data.response.
  // request.status: the last answer's HTTP status.
  async function request(options) {
    const r = await client.request(options);
    request.status = r.status;
    if (r.status < 200 || r.status >= 300) throw new ApiError(options, r);
    expect(`${options.method.toUpperCase()} ${options.url}: a JSON envelope with a response`,
      r.data && typeof r.data === 'object' && 'response' in r.data, { status: r.status, data: r.data });
    return r.data.response;
  }
  return request;
}

const downloadFiles = (request, fileIds, folderIds, returnSingleOperation = true) =>
  request({ method: 'put', url: '/files/fileops/bulkdownload', data: { fileIds, folderIds, returnSingleOperation } });

const getProgress = (request, id) => request({ method: 'get', url: `/files/fileops?id=${id}` });

// getOperationProgress.ts, once per poll: an empty list or an item with a
// non-empty error rejects; otherwise the item with this id.
async function getOperationProgress(request, id) {
  await new Promise((res) => setTimeout(res, POLL_EVERY_MS));
  const res = await getProgress(request, id);
  if (!res || res.length === 0) throw new CheckFailed(`poll ${id}: getOperationProgress rejects on an empty list; actual: ${show(res)}`);
  const currentItem = res.find((x) => x.id === id);
  if (currentItem && currentItem.error) throw new CheckFailed(`poll ${id}: getOperationProgress rejects on error ${show(currentItem.error)}; actual: ${show(res)}`);
  return { currentItem, res };
}

// FilesActionsStore.downloadFiles: the PUT answer's first operation; its error
// must be falsy and it must have an id.
function expectStarted(res) {
  expect('the PUT answers a one-element list', Array.isArray(res) && res.length === 1, res);
  const data = res[0];
  expect('the operation\'s error is "" (falsy: the client goes on)', data.error === '', data);
  expect('the operation has an id (a lowercase GUID)', typeof data.id === 'string' && GUID.test(data.id), data);
  return data;
}

// Then `data.finished && data.url ? data : loopFilesOperations(data)`:
// getOperationProgress until the item is finished; it must have a url.
async function untilFinished(request, data) {
  let item = data;
  if (!(data.finished && data.url)) {
    const seen = [];
    item = undefined;
    for (let i = 0; i < MAX_POLLS && !(item && item.finished); i++) {
      const { currentItem, res } = await getOperationProgress(request, data.id);
      expect('the poll lists the operation', currentItem, res);
      item = currentItem;
      seen.push(`${item.progress}% finished=${item.finished}`);
    }
    expect(`finished within ${MAX_POLLS} polls`, item && item.finished, seen);
  }
  expect('the finished operation has a url', typeof item.url === 'string' && item.url !== '', item);
  return item;
}

// openUrl(item.url, Download): the browser navigates there, with its cookie.
async function openUrl(base, url) {
  expect('the url is absolute, on BASE_URL', typeof url === 'string' && url.startsWith(base + '/'), url);
  const r = await axios.get(url, {
    headers: { Cookie: COOKIE, Accept: NAVIGATION_ACCEPT },
    responseType: 'arraybuffer',
    maxRedirects: 0,
    validateStatus: () => true,
  });
  const bytes = Buffer.from(r.data);
  expect('the archive GET answers 200', r.status === 200,
    { status: r.status, headers: r.headers, body: bytes.subarray(0, 300).toString('utf8') });
  expect('Content-Type is application/zip', r.headers['content-type'] === 'application/zip', r.headers['content-type']);
  return openZip('archive', bytes);
}


function expectNames(zip, want) {
  expect(`entry names are exactly ${show(want)}`,
    zip.names.length === want.length && show([...zip.names].sort()) === show([...want].sort()), zip.names);
}

function expectText(zip, name, text) {
  const got = zip.entries.get(name);
  expect(`${show(name)} holds the fixture's bytes`, got && got.equals(Buffer.from(text, 'utf8')), got && got.toString('utf8'));
}

// ------------------------------------------------------------------------------

run(NAME, async (base) => {
  const request = apiClient(base, COOKIE);
  const stale = apiClient(base, STALE_COOKIE);
  const { state, step, report } = steps(NAME);

  await step('1 Download dialog: PUT bulkdownload with {key, value} objects in fileIds -> one operation, error ""', [], async () => {
    // DialogsStore: files.push({ key: item.id, value: format }); folders.push(item.id).
    const fileIds = [{ key: 12348, value: '.txt' }, { key: 12347, value: '.docx' }];
    state.op = expectStarted(await downloadFiles(request, fileIds, [1004]));
  });

  await step('2 poll GET fileops?id= until finished, open the url -> Empty/, notes.txt, ' + OVERVIEW_DOCX, ['op'], async () => {
    const item = await untilFinished(request, state.op);
    const zip = await openUrl(base, item.url);
    expectNames(zip, ['Empty/', 'notes.txt', OVERVIEW_DOCX]);
    // Converted titles only: the bytes stay the fixture's.
    expectText(zip, 'notes.txt', NOTES_TEXT);
    expectText(zip, OVERVIEW_DOCX, OVERVIEW_TEXT);
    expect('Empty/ holds no bytes', zip.entries.get('Empty/').length === 0, zip.entries.get('Empty/'));
  });

  await step('3 plain multi-select (downloadAction): fileIds [12345], folderIds [45678] -> report.pdf, Q1/, Q1/report.pdf, Q1/summary.txt', [], async () => {
    // downloadAction -> downloadFiles(fileIds, folderIds): returnSingleOperation defaults to true.
    const item = await untilFinished(request, expectStarted(await downloadFiles(request, [12345], [45678])));
    const zip = await openUrl(base, item.url);
    expectNames(zip, ['report.pdf', 'Q1/', 'Q1/report.pdf', 'Q1/summary.txt']);
    for (const name of ['report.pdf', 'Q1/report.pdf']) {
      const head = zip.entries.get(name).subarray(0, 4).toString('latin1');
      expect(`${name} starts with %PDF`, head === '%PDF', head);
    }
    expect('report.pdf and Q1/report.pdf are the same bytes',
      zip.entries.get('report.pdf').equals(zip.entries.get('Q1/report.pdf')), zip.names);
    expectText(zip, 'Q1/summary.txt', SUMMARY_TEXT);
  });

  await step('4 a stale cookie, no Authorization: GET fileops -> 200 []; PUT bulkdownload -> 404 FileNotFoundException', [], async () => {
    const list = await stale({ method: 'get', url: '/files/fileops' });
    expect('GET fileops answers 200', stale.status === 200, stale.status);
    expect('GET fileops lists nothing (the caller is a guest)', Array.isArray(list) && list.length === 0, list);
    let result;
    try {
      result = await downloadFiles(stale, [12345], [45678]);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      const r = e.response;
      expect('PUT bulkdownload answers 404', r.status === 404, { status: r.status, data: r.data });
      const type = r.data && r.data.error && r.data.error.type;
      expect('error.type is System.IO.FileNotFoundException', type === 'System.IO.FileNotFoundException', r.data);
      return;
    }
    throw new CheckFailed(`PUT bulkdownload with a stale cookie: expected 404; it succeeded with ${show(result)}`);
  });

  return report();
});
