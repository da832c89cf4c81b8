// Shared by the Node real-client scripts (box_node.js, box_typescript.js,
// itslearning_axios.js): checks, the labelled step runner, the BASE_URL entry
// point and, for the two Box SDKs, client set-up, error description and the
// BoxApiError checks.
//
// box-node-sdk and box-typescript-sdk-gen are two packages with the same
// shapes, so nothing here loads either: each script loads its own SDK (through
// loadPackages) and passes the classes to boxSdk().
'use strict';

const { createRequire } = require('module');
const path = require('path');

const RANDOM_PDF = /^[0-9a-z]{6}\.pdf$/;
// As on Box: the body's request_id, and the box-request-id header.
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

// Any thrown value, with the `error` an SDK's fetch error wraps.
function describeError(e) {
  const cause = e && e.error ? ` (cause: ${e.error.message || e.error})` : '';
  return `${(e && e.constructor && e.constructor.name) || typeof e}: ${e && e.message}${cause}`;
}

// A Node Readable (the SDKs' ByteStream: node-fetch's body), read to the end.
async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

// Both SDKs (box-node-sdk 10.12.0, box-typescript-sdk-gen 1.19.1) fill
// responseInfo.code / requestId / helpUrl with sdToJson(body.field), i.e.
// JSON.stringify, so a server's "code":"not_found" arrives as the 11 characters
// "not_found" *with* the quotes, whatever the server. Undo that one layer of
// JSON before comparing; a plain string (an SDK without the quirk) passes as it is.
function sdkString(v) {
  if (typeof v === 'string' && v.startsWith('"')) {
    try {
      const parsed = JSON.parse(v);
      if (typeof parsed === 'string') return parsed;
    } catch (_) { /* not JSON: compare as it is */ }
  }
  return v;
}

// Loads packages from tests/clients/node_modules (`npm ci` in tests/clients),
// relative to this folder, so any cwd works and NODE_PATH is not needed:
// `load(sdkRequire)` returns what the script wants. A package that does not load
// ends the process with 2 and says so.
function loadPackages(script, what, load) {
  const sdkRequire = createRequire(path.join(__dirname, 'package.json'));
  try {
    return load(sdkRequire);
  } catch (e) {
    console.error(`${script}: cannot load ${what} from ${path.join(__dirname, 'node_modules')} ` +
      `(${e.message}); run \`npm ci\` in tests/clients`);
    process.exit(2);
  }
}

// Labelled steps: a step whose `needs` (keys of `state`, set by earlier steps)
// are missing is skipped; a CheckFailed is reported by its message, anything
// else through `describe`. report() prints every step and returns the exit code.
function steps(name, describe = describeError) {
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

  function report() {
    let failed = 0;
    for (const [label, error] of results) {
      if (error === null) {
        console.log(`ok    ${label}`);
      } else {
        failed += 1;
        console.log(`FAIL  ${label}\n      ${error}`);
      }
    }
    console.log(`${name}: ${results.length - failed} passed, ${failed} failed`);
    return failed ? 1 : 0;
  }

  return { state, step, report };
}

// The scripts' entry point: `node NAME.js BASE_URL`; `main(base)` (BASE_URL
// without trailing slashes) resolves to the exit code. Prints the run time.
function run(name, main) {
  const argv = process.argv.slice(2);
  if (argv.length !== 1) {
    console.error(`usage: node ${name}.js BASE_URL`);
    process.exit(2);
  }
  const t0 = process.hrtime.bigint();
  main(argv[0].replace(/\/+$/, '')).then(
    (rc) => {
      console.error(`${name}: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)}s`);
      process.exit(rc);
    },
    (e) => {
      console.error(`${name}: crashed: ${(e && e.stack) || e}`);
      process.exit(1);
    },
  );
}

// The pieces that need a Box SDK's classes: BoxClient, BoxDeveloperTokenAuth,
// NetworkSession, BaseUrls, BoxRetryStrategy, BoxApiError. Options:
// - describeHeaders: response headers describeApiError shows besides box-request-id;
// - nullCode: what expectApiError(..., code null) checks after the status:
//   'status-only' (nothing more), or 'empty-body' (the box-request-id header,
//   and no body at all: Box's gateway answer);
// - bodyRequestId: also check that responseInfo.requestId is the body's request_id.
function boxSdk(classes, options = {}) {
  const { BoxClient, BoxDeveloperTokenAuth, NetworkSession, BaseUrls, BoxRetryStrategy, BoxApiError } = classes;
  const { describeHeaders = [], nullCode = 'status-only', bodyRequestId = false } = options;

  // Retries are off (maxAttempts: 1, which also skips the SDK's refresh on 401;
  // maxRetriesOnException: 0), so an error answer reaches the script as the
  // server sent it.
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
    const headers = ri.headers || {};
    const extra = describeHeaders.map((h) => `${h}=${show(headers[h])}, `).join('');
    return `BoxApiError(statusCode=${show(ri.statusCode)}, code=${show(ri.code)}, ` +
      `requestId=${show(ri.requestId)}, box-request-id=${show(headers['box-request-id'])}, ` +
      `${extra}rawBody=${show(ri.rawBody)})`;
  }

  function describe(e) {
    if (e instanceof BoxApiError) return describeApiError(e);
    return describeError(e);
  }

  // `call` must throw a BoxApiError with `status` and the error `code`, whose
  // request ids look like Box's; returns the error. `code` null: see nullCode.
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
      if (code === null && nullCode === 'status-only') return e;
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
      if (bodyRequestId) {
        expect(`${what}: requestId is the body's request_id`, ri.body && ri.body.request_id === requestId,
          describeApiError(e));
      }
      expect(`${what}: requestId differs from the box-request-id header`, requestId !== header, describeApiError(e));
      return e;
    }
    throw new CheckFailed(`${what}: expected BoxApiError ${status} ${code}; the call succeeded and returned ${show(result)}`);
  }

  return { makeClient, describeApiError, describe, expectApiError };
}

// A created ZipDownload for files 12345 and 34325 (both "report.pdf") and a
// folder: its URLs under `base`, a parsed expiresAt, and one name conflict of
// the two files, renamed to distinct ^[0-9a-z]{6}\.pdf$. Returns the two
// download names.
function expectReportPdfConflict(zd, base) {
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
  return group.map((c) => c.downloadName);
}

// A ZipDownloadStatus `st` has the counts and state in `want`; `note` ends the check's name.
function expectZipStatus(st, want, note = '') {
  const got = {
    totalFileCount: st.totalFileCount,
    downloadedFileCount: st.downloadedFileCount,
    skippedFileCount: st.skippedFileCount,
    skippedFolderCount: st.skippedFolderCount,
    state: st.state,
  };
  expect(`status is ${show(want)}${note}`, show(got) === show(want), got);
}

// Folder 1002 (Documents) of the default fixture, zipped: `names` are the
// archive's entries, `textOf(name)` an entry as UTF-8.
const DOCUMENTS_OVERVIEW = 'Documents/\u00dcberblick \u2013 \u65e5\u672c\u8a9e.txt'; // Überblick – 日本語.txt
function expectDocumentsZip(names, textOf) {
  for (const want of ['Documents/', 'Documents/Reports/Q1/report.pdf', 'Documents/Empty/', DOCUMENTS_OVERVIEW]) {
    expect(`the archive has ${show(want)}`, names.includes(want), names);
  }
  const text = textOf(DOCUMENTS_OVERVIEW);
  expect("the non-ASCII entry contains 'Gr\u00fc\u00dfe'",
    typeof text === 'string' && text.includes('Gr\u00fc\u00dfe'), text);
}

module.exports = {
  CheckFailed,
  show,
  expect,
  describeError,
  readAll,
  sdkString,
  loadPackages,
  steps,
  run,
  boxSdk,
  expectReportPdfConflict,
  expectZipStatus,
  DOCUMENTS_OVERVIEW,
  expectDocumentsZip,
};
