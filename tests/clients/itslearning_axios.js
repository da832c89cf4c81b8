#!/usr/bin/env node
// Drive zipgate's itslearning dialect the way the only public caller of these
// routes does (the TypeScript `itslearning-sdk`, built on axios): JSON bodies,
// axios' default `Accept: application/json, text/plain, */*`, the token as
// `?access_token=`, `Created` parsed into a Date; create, poll until
// completed, download the DownloadUrl, open the zip.
// Usage: node tests/clients/itslearning_axios.js BASE_URL
// The checks and the step runner are box_harness.js's (shared with the Box scripts).
'use strict';
const { execFileSync } = require('child_process');
const { expect, loadPackages, steps, run } = require('./box_harness');

const axios = loadPackages('itslearning_axios', 'axios', (sdkRequire) => sdkRequire('axios'));

run('itslearning_axios', async (base) => {
  const http = axios.create({ baseURL: base, params: { access_token: 'alice-token' }, validateStatus: () => true });
  const { step, report } = steps('itslearning_axios');
  let job;
  await step('1 createZip -> a ZipFileJobModel with a parseable Created', [], async () => {
    const r = await http.post('/restapi/personal/yourfiles/files/zip/v1', { FileIds: [12345, 34325], FolderIds: [1004] });
    expect('200', r.status === 200, r.status);
    expect('JSON', String(r.headers['content-type']).startsWith('application/json'), r.headers['content-type']);
    expect('keys in declaration order', Object.keys(r.data).join() === 'JobId,FileRepoId,ZipFileName,Created,Status,DownloadUrl', Object.keys(r.data));
    const created = new Date(r.data.Created);
    expect('Created parses as a date', !Number.isNaN(created.getTime()), r.data.Created);
    expect('DownloadUrl is null until completed', r.data.DownloadUrl === null, r.data);
    job = r.data;
  });
  let done;
  await step('2 getZipStatus until Completed', [], async () => {
    expect('a job from step 1', job, job);
    for (let i = 0; i < 20 && !done; i++) {
      const r = await http.get(`/restapi/personal/yourfiles/files/zip/${job.JobId}/v1`);
      expect('200', r.status === 200, r.status);
      if (r.data.Status === 'Completed') done = r.data;
      else await new Promise((res) => setTimeout(res, 100));
    }
    expect('completed', done, job);
    expect('an absolute DownloadUrl', done.DownloadUrl.startsWith(base), done.DownloadUrl);
  });
  await step('3 download the DownloadUrl without the token and open the zip', [], async () => {
    expect('a completed job from step 2', done, done);
    const r = await axios.get(done.DownloadUrl, { responseType: 'arraybuffer', validateStatus: () => true });
    expect('200', r.status === 200, r.status);
    const bytes = Buffer.from(r.data);
    expect('a zip', bytes.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'binary')), bytes.subarray(0, 8));
    const names = execFileSync('python3', ['-c',
      'import io,sys,zipfile; z=zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read())); assert z.testzip() is None; print("\\n".join(z.namelist()))'],
      { input: bytes }).toString().trim().split('\n');
    expect('entries', names.join() === 'report.pdf,report (1).pdf,Empty/', names);
  });
  await step('4 an unknown id is a 404 with a Message', [], async () => {
    const r = await http.post('/restapi/personal/yourfiles/files/zip/v1', { FileIds: [999] });
    expect('404', r.status === 404, r.status);
    expect('Message', typeof r.data.Message === 'string', r.data);
  });
  return report();
});
