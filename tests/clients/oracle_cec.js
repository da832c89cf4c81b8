#!/usr/bin/env node
// Drive zipgate's Oracle Content Management dialect the way Oracle's `cec`
// toolkit talks to it (oracle/content-and-experience-toolkit, `sites/`,
// version 25.3.1), through the toolkit's own HTTP library at the version it
// pins: node-fetch 2.7.0 (sites/package.json:261).
//
// The toolkit has no bulk-download command: nothing in it calls
// `folders/{id}/_download`. A toolkit user reaches these routes through its
// generic REST commands, and this script repeats what those send, request for
// request (our own code; none of the toolkit's is copied):
//   cec exeo "/documents/api/1.2/folders/<folder>/_download" -b '{"idList":"…"}'
//       bin/resource.js:2510-2634 executePost -> test/server/serverRest.js:8790-8960
//       _executePost -> test/server/requestUtils.js:108-138 _post
//   cec exeg "<the Location URL>"        (one call per poll)
//       bin/resource.js:2410-2508 executeGet -> serverRest.js:8633-8698
//       _executeGet -> requestUtils.js:58-84 _get
//   cec exeg "<the links[0].href URL>" -f package.zip
//       resource.js:2464-2480 -> serverRest.js:8701-8788 _executeGetStream
//       -> requestUtils.js:86-106 _getStream
//   cec exed "/documents/api/1.2/folders/<folder>/_download/<job>"
//       resource.js:2866-2902 executeDelete -> serverRest.js:9157-9228
//       executeDelete -> requestUtils.js:146 (delete is _post)
// What each request carries:
// - Authorization: `(server.tokentype || 'Bearer') + ' ' + server.oauthtoken`
//   (test/server/serverUtils.js:398-417, line 413 for a server registered with a token);
// - X-Oracle-Ocm-App-Key: `o:5a64a808220a4b1295fd80bc70531382`, added by every
//   requestUtils call whose options have headers (requestUtils.js:14, 52-56,
//   59-61, 87-89, 109-111);
// - POST and DELETE also `X-REQUESTED-WITH: XMLHttpRequest` (serverRest.js:8817,
//   9179); a POST with a non-empty body `Content-Type: application/json` and
//   the body JSON.stringify'd (serverRest.js:8838-8841); a DELETE
//   `Content-Type: application/json` and no body (serverRest.js:9178);
// - GETs only Authorization (serverRest.js:8643-8645, 8712-8714) and the app
//   key; an endpoint starting with `http` is used as it is, anything else is
//   appended to server.url (serverRest.js:8637-8641, 8706-8710), so the
//   Location and links[0].href are followed verbatim; POST and DELETE always
//   append the endpoint to server.url (serverRest.js:8800, 9165);
// - node-fetch 2.7.0's own defaults on top: `Accept: */*`,
//   `User-Agent: node-fetch/1.0 (+https://github.com/bitinn/node-fetch)`,
//   `Accept-Encoding: gzip,deflate` (lib/index.js getNodeRequestOptions),
//   redirects followed; Node's default agent (keep-alive on Node 20+).
// None of these URLs has a trailing slash: the toolkit only adds one to the
// files API's `/files/{id}/data/` (serverRest.js:685, 786, 840), which zipgate
// does not serve; these endpoints are typed by the user and sent as typed.
// Responses are read as the toolkit reads them: the body as a Buffer
// (`response.buffer()`, requestUtils.js:67, 118), `location` and `ecid` from
// the headers (requestUtils.js:75, 122, 129), JSON.parse of the body
// (serverRest.js:8861-8866); exeo resolves the parsed body and, for a status
// >= 400, adds statusCode/statusMessage to it (serverRest.js:8938-8955); exeg
// only takes a 200 (serverRest.js:8674) and prints JSON when the Content-Type
// says json (resource.js:2497); exeg -f only takes a 200 and pipes the body
// to the file, done at the body's `end` (serverRest.js:8745-8753); exed takes
// any status <= 300 (serverRest.js:9211).
// Not reproduced: before every command the CLI validates the token with
// `GET /documents/integration?IdcService=GET_USER_INFO&IsJson=1`
// (serverUtils.js:2886, 2972-3012), which zipgate does not serve (the CLI would
// clear the token and stop there); and `exeo -a`, whose polling loop
// (serverRest.js:8878-8917, every 5 s) waits for `progress === 'succeeded'` in
// lower case and so never ends on the Documents API's `SUCCEEDED`; step 2
// checks that its failure test (serverRest.js:8888) does not fire.
// Polls here run every 100 ms (a user runs exeg by hand), at most 50.
// Usage: node tests/clients/oracle_cec.js BASE_URL  (zipgate on its default fixture)
// The checks and the step runner are box_harness.js's.
'use strict';
const { Writable } = require('stream');
const { openZip } = require('./zip_reader');
const { expect, loadPackages, steps, run } = require('./box_harness');

const fetch = loadPackages('oracle_cec_node', 'node-fetch', (sdkRequire) => {
  const version = sdkRequire('node-fetch/package.json').version;
  if (version !== '2.7.0') throw new Error(`node-fetch ${version}, the toolkit pins 2.7.0`);
  return sdkRequire('node-fetch');
});

const NAME = 'oracle_cec_node';
const TOKEN = 'alice-token';
const APP_KEY = 'o:5a64a808220a4b1295fd80bc70531382'; // requestUtils.js:14
const DOCUMENTS = 'FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D';
const NOTES = 'DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813'; // notes.md, in Documents
const EMPTY = 'FE27E70CA140E819250B4D365F48D86BC9097E77B3EE'; // Empty/, in Documents
const HOME = 'F081AA4AE9BF971FF6DDF03ECBD90A4FA3405930D830';
const POLL_EVERY_MS = 100;
const MAX_POLLS = 50;

// A registered server as serverUtils sees it: a URL and an OAuth token.
function cec(base) {
  const server = { url: base, oauthtoken: TOKEN };
  const authorization = () => `${server.tokentype || 'Bearer'} ${server.oauthtoken}`; // serverUtils.js:413

  // requestUtils.js _get / _post: the app key joins the caller's headers, the
  // whole options object goes to fetch, the body is read as a Buffer.
  async function buffered(options) {
    if (options.headers) options.headers['X-Oracle-Ocm-App-Key'] = APP_KEY;
    const response = await fetch(options.url, options);
    const data = await response.buffer();
    return {
      res: {
        statusCode: response.status,
        statusMessage: response.statusText,
        url: response.url,
        location: response.headers.get('location'),
        headers: response.headers,
        ecid: response.headers.get('x-oracle-dms-ecid'),
      },
      body: data,
    };
  }

  function parse(body) {
    try {
      return JSON.parse(body);
    } catch (_) {
      return undefined;
    }
  }

  return {
    // cec exeo ENDPOINT -b BODY (no -a): serverRest.js _executePost with responseStatus.
    async executePost(endpoint, body) {
      const postData = {
        method: 'POST',
        url: server.url + endpoint,
        headers: Object.assign({}, { 'X-REQUESTED-WITH': 'XMLHttpRequest', Authorization: authorization() }),
      };
      if (body && Object.keys(body).length > 0) {
        postData.headers['Content-Type'] = 'application/json';
        postData.body = JSON.stringify(body);
      }
      const { res, body: raw } = await buffered(postData);
      let data = parse(raw);
      if (res.statusCode >= 400) {
        if (data) {
          if (!Object.prototype.hasOwnProperty.call(data, 'statusCode')) data.statusCode = res.statusCode;
          if (!Object.prototype.hasOwnProperty.call(data, 'statusMessage')) data.statusMessage = res.statusMessage;
        } else {
          data = { statusCode: res.statusCode, statusMessage: res.statusMessage };
        }
      }
      return { res, data };
    },

    // cec exeg ENDPOINT (no -f): serverRest.js _executeGet with returnContentType.
    async executeGet(endpoint) {
      const url = endpoint.startsWith('http') ? endpoint : server.url + endpoint;
      const options = { url, encoding: null, headers: Object.assign({}, { Authorization: authorization() }) };
      const { res, body } = await buffered(options);
      if (res.statusCode !== 200) return { res, err: 'err', data: parse(body) };
      return { res, data: body, contentType: res.headers.get('content-type') };
    },

    // cec exeg ENDPOINT -f FILE: serverRest.js _executeGetStream + requestUtils.js
    // _getStream; the "file" is a buffer here.
    async executeGetStream(endpoint) {
      const url = endpoint.startsWith('http') ? endpoint : server.url + endpoint;
      const options = { url, encoding: null, headers: Object.assign({}, { Authorization: authorization() }) };
      options.headers['X-Oracle-Ocm-App-Key'] = APP_KEY;
      const response = await fetch(url, options);
      const res = {
        statusCode: response.status,
        statusMessage: response.statusText,
        headers: response.headers,
        ecid: response.headers.get('x-oracle-dms-ecid'),
      };
      if (res.statusCode !== 200) return { res, err: 'err' };
      const chunks = [];
      const writer = new Writable({
        write(chunk, _enc, cb) {
          chunks.push(chunk);
          cb();
        },
      });
      await new Promise((resolve, reject) => {
        response.body.pipe(writer);
        response.body.on('end', resolve);
        response.body.on('error', reject);
      });
      return { res, file: Buffer.concat(chunks) };
    },

    // cec exed ENDPOINT: serverRest.js executeDelete.
    async executeDelete(endpoint) {
      const options = {
        method: 'DELETE',
        url: server.url + endpoint,
        headers: Object.assign({}, {
          'Content-Type': 'application/json',
          'X-REQUESTED-WITH': 'XMLHttpRequest',
          Authorization: authorization(),
        }),
      };
      const { res, body } = await buffered(options);
      const data = parse(body);
      return res.statusCode <= 300 ? { res } : { res, err: 'err', data: data === undefined ? body : data };
    },
  };
}

// What a user reads off `cec exeg`: the JSON it prints (resource.js:2489-2503).
function printedJson(what, got) {
  expect(`${what}: exeg succeeds (200)`, !got.err, { status: got.res.statusCode, data: got.data });
  expect(`${what}: exeg prints it as JSON (Content-Type has "json")`,
    String(got.contentType).indexOf('json') >= 0, got.contentType);
  return JSON.parse(got.data);
}

const delay = (ms) => new Promise((res) => setTimeout(res, ms));

async function pollUntilDone(toolkit, statusUrl) {
  const seen = [];
  for (let i = 0; i < MAX_POLLS; i++) {
    const status = printedJson(`status poll ${i + 1}`, await toolkit.executeGet(statusUrl));
    seen.push(status);
    if (status.completed === 'true' || status.completed === true) return { status, seen };
    await delay(POLL_EVERY_MS);
  }
  return { status: null, seen };
}

run(NAME, async (base) => {
  const toolkit = cec(base);
  const { state, step, report } = steps(NAME);

  await step('1 exeo POST _download {idList: notes.md,Empty} -> 200, the job in Location', [], async () => {
    const { res, data } = await toolkit.executePost(
      `/documents/api/1.2/folders/${DOCUMENTS}/_download`, { idList: `${NOTES},${EMPTY}` });
    expect('200', res.statusCode === 200, { status: res.statusCode, data });
    expect('the body is JSON', data && typeof data === 'object', data);
    expect('errorCode "0"', data.errorCode === '0', data);
    expect('an ecid (the toolkit prints it)', typeof res.ecid === 'string' && res.ecid.length > 0, res.ecid);
    expect('a Location header on our origin',
      typeof res.location === 'string' && res.location.startsWith(`${base}/documents/api/1.2/folders/${DOCUMENTS}/_download/`),
      res.location);
    expect('the body\'s Location is the header', data.Location === res.location, [data.Location, res.location]);
    state.job = res.location;
  });

  await step('2 exeg the Location until completed; exeo -a\'s failure test never fires', ['job'], async () => {
    const { status, seen } = await pollUntilDone(toolkit, state.job);
    expect(`completed within ${MAX_POLLS} polls`, status, seen.map((s) => s.progress));
    expect('SUCCEEDED', status.progress === 'SUCCEEDED', status);
    // serverRest.js:8888, the `exeo -a` loop's test for a failed job.
    const failed = seen.filter((d) => !d || d.error || !d.progress || d.progress === 'failed' || d.progress === 'aborted');
    expect('no answer looks failed to the toolkit', failed.length === 0, failed);
    const link = Array.isArray(status.links) ? status.links[0] : undefined;
    expect('links[0].href is an absolute URL on our origin',
      link && typeof link.href === 'string' && link.href.startsWith(`${base}/`), status.links);
    state.href = link.href;
    state.status = status;
  });

  await step('3 exeg links[0].href -f package.zip -> the zip with notes.md and Empty/', ['href'], async () => {
    const got = await toolkit.executeGetStream(state.href);
    expect('200 (exeg -f takes nothing else)', !got.err, got.res.statusCode);
    const details = state.status.details || {};
    expect('the size the status gave', String(got.file.length) === String(details.filesize),
      { bytes: got.file.length, details });
    const { names } = openZip('package.zip', got.file);
    expect('entries', names.join() === 'notes.md,Empty/', names);
  });

  await step('4 exed the job -> done; exeg shows it ABORTED', [], async () => {
    const created = await toolkit.executePost(`/documents/api/1.2/folders/${DOCUMENTS}/_download`, { idList: NOTES });
    expect('exeo 200', created.res.statusCode === 200, created.data);
    const job = created.res.location;
    const path = job.slice(base.length); // exed appends its endpoint to server.url
    const deleted = await toolkit.executeDelete(path);
    expect('exed succeeds (status <= 300)', !deleted.err, { status: deleted.res.statusCode, data: deleted.data });
    const status = printedJson('status after exed', await toolkit.executeGet(job));
    expect('ABORTED', status.progress === 'ABORTED', status);
  });

  await step('5 exeo with an id outside the folder -> the -96 envelope, statusCode 400 added', [], async () => {
    const { res, data } = await toolkit.executePost(`/documents/api/1.2/folders/${HOME}/_download`, { idList: NOTES });
    expect('400', res.statusCode === 400, { status: res.statusCode, data });
    expect('errorCode "-96"', data.errorCode === '-96', data);
    expect('statusCode 400 added by the toolkit', data.statusCode === 400, data);
    expect('a title to print', typeof data.title === 'string' && data.title.startsWith('Unable to start bulk download'), data);
  });

  return report();
});
