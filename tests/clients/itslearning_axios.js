#!/usr/bin/env node
// Drive zipgate's itslearning dialect the way the itslearning TypeScript SDK
// does (DanielZ1337/itslearning-sdk 1.0.12, commit de25765; published on
// GitHub, not npm). None of its code is copied here: this script makes the
// same requests with the same HTTP library at the version the SDK's lockfile
// resolves (axios 1.13.6: package.json `"axios": "^1.13.6"`, bun.lockb
// `axios-1.13.6.tgz`), installed as `axios-itslearning-sdk` (an npm alias, so
// the DocSpace script keeps its own axios).
// What the SDK does, file:line at that commit:
// - src/index.ts:110-120: `new ItsLearningSDK({ baseURL, accessToken })` keeps
//   both in a ConfigManager (src/lib/ConfigManager.ts:8-20) and builds one
//   HttpClient; src/lib/HttpClient.ts:17 `axios.create()` with no config, so
//   axios' defaults: `Accept: application/json, text/plain, */*`, an object
//   body as JSON with `Content-Type: application/json`, `User-Agent:
//   axios/1.13.6`, validateStatus 2xx (anything else throws an AxiosError),
//   a JSON body parsed into `response.data`;
// - HttpClient.ts:38-54 getURL: `new URL(baseURL)`, `url.pathname = endpoint`
//   (the endpoint replaces any path the base URL had), the query rebuilt by
//   createSearchParams (src/utils/search-params.ts:7-31) from the request's
//   params plus `access_token` (the token travels only in the query string;
//   no Authorization header is ever set);
// - HttpClient.ts:107-117 post: `{ data, params, ...config }`, the body through
//   serializeRequestBodyDates (src/utils/request-body.ts:11-30: plain objects
//   copied, Dates to ISO strings), `client.post(url, body, config)` (config is
//   `{}`, applyFormDataConfig, HttpClient.ts:61-94, leaves non-FormData alone);
//   HttpClient.ts:96-105 get: `client.get(url, options)` (options undefined);
//   both resolve to hydrateApiResponse(METHOD, endpoint, response.data);
// - src/api/YourFiles.ts:141-147 createZip(request): POST
//   `/restapi/personal/yourfiles/files/zip/v1` `{ data: request }`, the request
//   a ZipRequest `{ FileIds: number[], FolderIds: number[] }`
//   (src/types/api/native/Itslearning.RestApi.Entities.YourFiles.Requests.ts:37-40);
// - YourFiles.ts:155-161 getZipStatus(zipJobId: string): GET
//   `/restapi/personal/yourfiles/files/zip/${zipJobId}/v1`;
// - src/lib/response-transformer.ts:142-155 hydrateApiResponse: the route
//   registry (src/lib/generated/response-route-registry.ts) is matched on the
//   endpoint without its query, lower-cased, `{x}` as `[^/]+`, case-insensitive
//   (response-transformer.ts:22-63); a matched ZipFileJobModel gets `Created`
//   turned into a Date when `new Date(Created)` is valid, else left as it is
//   (date-model-registry.ts:707-711, response-transformer.ts:65-77, 79-103).
//   The registry has POST and GET `/restapi/personal/yourfiles/files/zip/v1`
//   (response-route-registry.ts:658-665, 765-772) but not
//   `/files/zip/{id}/v1`, so getZipStatus returns `Created` as the string the
//   server sent while createZip returns a Date;
// - the ZipFileJobModel type (…YourFiles.Requests.ts:28-35): JobId number,
//   FileRepoId/ZipFileName/Status/DownloadUrl strings, Created a Date.
// The SDK has no method for the latest-job route (GET …/files/zip/v1), none to
// poll and none to download: a caller polls getZipStatus and fetches
// DownloadUrl itself, here with the SDK's axios (`responseType:
// 'arraybuffer'`), without the token. Polls run every 100 ms, at most 20.
// Ids of the default fixture: files 12345 and 34325 (both report.pdf),
// folder 1004 (Empty).
// Usage: node tests/clients/itslearning_axios.js BASE_URL
// The checks and the step runner are box_harness.js's.
'use strict';
const { openZip } = require('./zip_reader');
const { CheckFailed, expect, loadPackages, show, steps, run } = require('./box_harness');

const NAME = 'itslearning_axios';
const AXIOS_VERSION = '1.13.6';
const axios = loadPackages(NAME, `axios ${AXIOS_VERSION} (axios-itslearning-sdk)`, (sdkRequire) => {
  const version = sdkRequire('axios-itslearning-sdk/package.json').version;
  if (version !== AXIOS_VERSION) throw new Error(`axios-itslearning-sdk is axios ${version}, the SDK resolves ${AXIOS_VERSION}`);
  return sdkRequire('axios-itslearning-sdk');
});

const ZIP_ROUTE = '/restapi/personal/yourfiles/files/zip/v1';
const ZIP_JOB_MODEL = 'Itslearning.RestApi.Entities.YourFiles.ZipFileJobModel';
// The two registry entries whose answers are ZipFileJobModels, and that
// model's date fields: all the hydration these calls can meet.
const ROUTES = [
  { method: 'GET', pathTemplate: ZIP_ROUTE, model: ZIP_JOB_MODEL },
  { method: 'POST', pathTemplate: ZIP_ROUTE, model: ZIP_JOB_MODEL },
];
const DATE_FIELDS = { [ZIP_JOB_MODEL]: ['Created'] };

// response-transformer.ts:22-27
function compileRouteTemplate(pathTemplate) {
  const escaped = pathTemplate.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/\\\{[^}]+\\\}/g, '[^/]+')}$`, 'i');
}

// response-transformer.ts:29-39
function normalizeRoutePath(path) {
  const [pathname] = path.split('?');
  if (!pathname) return '/';
  return (pathname.startsWith('/') ? pathname : `/${pathname}`).toLowerCase();
}

// response-transformer.ts:65-77
function parseDateValue(value) {
  if (value.length === 0) return value;
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? value : parsed;
}

// response-transformer.ts:142-155, for model schemas with date fields.
function hydrateApiResponse(method, endpoint, data) {
  const path = normalizeRoutePath(endpoint);
  const route = ROUTES.find((r) => r.method === method && compileRouteTemplate(r.pathTemplate).test(path));
  if (!route || data === null || data === undefined || typeof data !== 'object' || Array.isArray(data)) return data;
  for (const field of DATE_FIELDS[route.model] || []) {
    if (field in data && typeof data[field] === 'string') data[field] = parseDateValue(data[field]);
  }
  return data;
}

// search-params.ts:7-31
function createSearchParams(params) {
  const searchParams = new URLSearchParams();
  Object.entries(params).forEach(([key, value]) => {
    if (value === undefined || value === null) return;
    if (value instanceof Date) {
      searchParams.append(key, value.toISOString());
      return;
    }
    if (Array.isArray(value)) {
      value.forEach((item, index) => searchParams.append(`${key}[${index}]`, item.toString()));
      return;
    }
    searchParams.append(key, value.toString());
  });
  return searchParams;
}

// request-body.ts:11-30
function serializeRequestBodyDates(value) {
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(serializeRequestBodyDates);
  if (!value || typeof value !== 'object') return value;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, serializeRequestBodyDates(v)]));
}

// HttpClient.ts, the two verbs these calls use, and YourFiles.ts' two zip methods.
function itslearningSdk({ baseURL, accessToken }) {
  const client = axios.create(); // HttpClient.ts:17

  function getURL(endpoint, query) { // HttpClient.ts:38-54
    const url = new URL(baseURL);
    url.pathname = endpoint;
    url.search = createSearchParams({ ...(query || {}), access_token: accessToken }).toString();
    return url.toString();
  }

  const http = {
    async get(endpoint, options) { // HttpClient.ts:96-105
      const response = await client.get(getURL(endpoint, options && options.params), options);
      return hydrateApiResponse('GET', endpoint, response.data);
    },
    async post(endpoint, options) { // HttpClient.ts:107-117
      const { data, params, ...config } = options || {};
      const serializedData = serializeRequestBodyDates(data);
      const response = await client.post(getURL(endpoint, params), serializedData, config);
      return hydrateApiResponse('POST', endpoint, response.data);
    },
  };

  return {
    yourFiles: {
      createZip: (request) => http.post('/restapi/personal/yourfiles/files/zip/v1', { data: request }), // YourFiles.ts:141-147
      getZipStatus: (zipJobId) => http.get(`/restapi/personal/yourfiles/files/zip/${zipJobId}/v1`), // YourFiles.ts:155-161
    },
  };
}

// What a failing SDK call throws: axios' error for a non-2xx answer.
async function expectAxiosError(what, call, status) {
  let result;
  try {
    result = await call();
  } catch (e) {
    if (!axios.isAxiosError(e) || !e.response) {
      throw new CheckFailed(`${what}: expected an AxiosError with a response; threw ${e && e.constructor && e.constructor.name}: ${e && e.message}`);
    }
    expect(`${what}: status ${status}`, e.response.status === status, { status: e.response.status, data: e.response.data });
    return e.response;
  }
  throw new CheckFailed(`${what}: expected an AxiosError ${status}; the call returned ${show(result)}`);
}

function expectJobModel(job, createdType) {
  expect('members in declaration order', Object.keys(job).join() === 'JobId,FileRepoId,ZipFileName,Created,Status,DownloadUrl', Object.keys(job));
  expect('JobId is a number', Number.isInteger(job.JobId), job.JobId);
  expect('FileRepoId, ZipFileName, Status are strings',
    [job.FileRepoId, job.ZipFileName, job.Status].every((v) => typeof v === 'string'), job);
  if (createdType === 'Date') {
    expect('Created hydrated into a valid Date', job.Created instanceof Date && !Number.isNaN(job.Created.getTime()), job.Created);
  } else {
    expect('Created is the server\'s string, and a valid date',
      typeof job.Created === 'string' && !Number.isNaN(new Date(job.Created).getTime()), job.Created);
  }
}

run(NAME, async (base) => {
  const sdk = itslearningSdk({ baseURL: base, accessToken: 'alice-token' });
  const { state, step, report } = steps(NAME);

  await step('1 createZip({FileIds: [12345, 34325], FolderIds: [1004]}) -> a ZipFileJobModel', [], async () => {
    const job = await sdk.yourFiles.createZip({ FileIds: [12345, 34325], FolderIds: [1004] });
    expectJobModel(job, 'Date');
    expect('DownloadUrl is null until completed', job.DownloadUrl === null, job);
    state.job = job;
  });

  await step('2 getZipStatus(JobId) until Completed', ['job'], async () => {
    let done;
    const seen = [];
    for (let i = 0; i < 20 && !done; i++) {
      const job = await sdk.yourFiles.getZipStatus(String(state.job.JobId));
      seen.push(job.Status);
      expectJobModel(job, 'string');
      expect('the same job', job.JobId === state.job.JobId && job.FileRepoId === state.job.FileRepoId, job);
      if (job.Status === 'Completed') done = job;
      else await new Promise((res) => setTimeout(res, 100));
    }
    expect('completed', done, seen);
    expect('an absolute DownloadUrl on our origin',
      typeof done.DownloadUrl === 'string' && done.DownloadUrl.startsWith(`${base}/`), done.DownloadUrl);
    state.done = done;
  });

  await step('3 GET the DownloadUrl with the SDK\'s axios, no token -> the zip', ['done'], async () => {
    const r = await axios.get(state.done.DownloadUrl, { responseType: 'arraybuffer' });
    expect('200', r.status === 200, r.status);
    expect('application/zip', String(r.headers['content-type']).startsWith('application/zip'), r.headers['content-type']);
    const { names } = openZip('DownloadUrl', Buffer.from(r.data));
    expect('entries', names.join() === 'report.pdf,report (1).pdf,Empty/', names);
  });

  await step('4 createZip with an unknown file id -> AxiosError 404 with a Message', [], async () => {
    const response = await expectAxiosError('createZip({FileIds: [999], FolderIds: []})',
      () => sdk.yourFiles.createZip({ FileIds: [999], FolderIds: [] }), 404);
    expect('Message', response.data && typeof response.data.Message === 'string', response.data);
  });

  await step('5 getZipStatus of an unknown job -> AxiosError 404, no body', [], async () => {
    const response = await expectAxiosError('getZipStatus("999999")', () => sdk.yourFiles.getZipStatus('999999'), 404);
    expect('no body', response.data === '', response.data);
  });

  return report();
});
