#!/usr/bin/env python3
"""Record (or check) the ASP.NET Web API 2 reference answers for the itslearning dialect.

Sends every request in cases.json, byte for byte, to the reference host (refhost.exe running
on Mono, see README.md) and writes one golden file per case to
tests/golden/itslearning/webapi2/<name>.txt:

    HTTP <status>
    Name: value            (response headers, sorted by name; see SKIP_HEADERS)
    <empty line>
    <body bytes exactly as received>

Usage:
    record.py --exe PATH/refhost.exe --mono-path DIR   start the host on a free loopback port
    record.py --base http://127.0.0.1:8765/            use a host that is already running
  options:
    --out DIR      where to write (default: tests/golden/itslearning/webapi2 next to this folder)
    --only NAME    only this case (repeatable)
    --check        compare with the files in --out instead of writing; exit 1 on a difference

The request bytes are built by build_request() and nothing else is added: request line,
"Host: 127.0.0.1" (unless the case sets Host), the case's headers in order, Content-Length when
the case has a body (unless it sets one), "Connection: close", the empty line and the body.
A case with "body": null sends no body and no Content-Length; "body": "" sends Content-Length: 0.
Use the same function (or the same rules) to send a case to zipgate.
"""
import argparse
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, '..', 'golden', 'itslearning', 'webapi2'))
DEFAULT_HOST_HEADER = '127.0.0.1'
# Added by the transport (HttpListener here, IIS/http.sys in production), not by Web API.
SKIP_HEADERS = {'date', 'server', 'content-length', 'connection', 'keep-alive', 'transfer-encoding'}


def case_body(case):
    """The body bytes of a case, or None when the request has no body at all."""
    if 'body_base64' in case:
        return base64.b64decode(case['body_base64'])
    body = case.get('body')
    return None if body is None else body.encode('utf-8')


def build_request(case, host_header=DEFAULT_HOST_HEADER):
    body = case_body(case)
    names = {k.lower() for k, _ in case['headers']}
    lines = ['%s %s HTTP/1.1' % (case['method'], case['path'])]
    if 'host' not in names:
        lines.append('Host: ' + host_header)
    for k, v in case['headers']:
        lines.append('%s: %s' % (k, v))
    if body is not None and 'content-length' not in names:
        lines.append('Content-Length: %d' % len(body))
    lines.append('Connection: close')
    head = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')
    return head + (body or b'')


def send(base_host, base_port, case, timeout=30):
    """Send one case raw; return (status, [(name, value), ...], body_bytes)."""
    data = build_request(case)
    sock = socket.create_connection((base_host, base_port), timeout=timeout)
    try:
        sock.sendall(data)
        # http.client parses the answer (status line, headers, Content-Length or chunked body,
        # and no body for HEAD whatever the server sends after the headers).
        resp = http.client.HTTPResponse(sock, method=case['method'])
        resp.begin()
        body = resp.read()
        headers = resp.getheaders()
        return resp.status, headers, body
    finally:
        sock.close()


def render(status, headers, body):
    kept = [(k, v) for k, v in headers if k.lower() not in SKIP_HEADERS]
    kept.sort(key=lambda kv: (kv[0].lower(), kv[1]))
    text = 'HTTP %d\n' % status + ''.join('%s: %s\n' % kv for kv in kept) + '\n'
    return text.encode('latin-1') + body


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_host(exe, mono_path, detail=False):
    port = free_port()
    prefix = 'http://127.0.0.1:%d/' % port
    env = dict(os.environ)
    if mono_path:
        env['MONO_PATH'] = mono_path
    args = ['mono', exe, prefix] + (['detail'] if detail else [])
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    line = proc.stdout.readline()
    if not line.startswith('listening'):
        proc.kill()
        raise SystemExit('reference host did not start: %r' % line)
    return proc, '127.0.0.1', port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--base')
    ap.add_argument('--exe')
    ap.add_argument('--mono-path')
    ap.add_argument('--cases', default=os.path.join(HERE, 'cases.json'))
    ap.add_argument('--out', default=DEFAULT_OUT)
    ap.add_argument('--only', action='append')
    ap.add_argument('--check', action='store_true')
    ap.add_argument('--detail', action='store_true', help='start the host with IncludeErrorDetailPolicy.Always (not for goldens)')
    a = ap.parse_args()
    cases = json.load(open(a.cases, encoding='utf-8'))
    names = [c['name'] for c in cases]
    assert len(names) == len(set(names)), 'duplicate case names'
    if a.only:
        cases = [c for c in cases if c['name'] in a.only]
    proc = None
    if a.base:
        from urllib.parse import urlsplit
        u = urlsplit(a.base)
        host, port = u.hostname, u.port or 80
    elif a.exe:
        proc, host, port = start_host(a.exe, a.mono_path, a.detail)
    else:
        ap.error('give --base or --exe')
    t0 = time.time()
    bad = 0
    try:
        os.makedirs(a.out, exist_ok=True)
        for case in cases:
            status, headers, body = send(host, port, case)
            out = render(status, headers, body)
            path = os.path.join(a.out, case['name'] + '.txt')
            if a.check:
                old = open(path, 'rb').read() if os.path.exists(path) else None
                if old != out:
                    bad += 1
                    print('DIFF %s' % case['name'])
            else:
                with open(path, 'wb') as f:
                    f.write(out)
            ctype = next((v for k, v in headers if k.lower() == 'content-type'), '-')
            print('%-32s %d %-40s %s' % (case['name'], status, ctype, body[:90]))
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
    print('%d cases in %.1fs%s' % (len(cases), time.time() - t0, ', %d differ' % bad if a.check else ''))
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
