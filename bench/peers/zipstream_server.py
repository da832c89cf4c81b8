#!/usr/bin/env python3
"""The zipstream-ng peer for bench/peers.py: a folder on disk streamed as a zip.

    zipstream_server.py --root DIR [--listen 127.0.0.1:0]
    GET /<folder>?compression=store|deflate&level=N  ->  200 application/zip

Built the way zipstream-ng's own `zipserver` is (http.server's threading
server, `wfile.writelines(zipstream)`), plus the compression choice that
`zipserver` lacks. A stored archive is sized (exact Content-Length, as
zipstream-ng computes it up front); a deflated one ends when the connection
closes (HTTP/1.0), since its length is unknown until the end. Like zipgate,
it prints its URL as the one line on stdout.
"""

import argparse
import http.server
import os
import sys
import urllib.parse
from zipfile import ZIP_DEFLATED, ZIP_STORED

from zipstream import ZipStream


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        name = urllib.parse.unquote(url.path).strip("/")
        folder = os.path.join(self.server.root, name)
        if not name or "/" in name or name.startswith(".") or not os.path.isdir(folder):
            self.send_error(404, "no such folder")
            return
        compression = query.get("compression", ["store"])[0]
        if compression not in ("store", "deflate"):
            self.send_error(400, "compression is store or deflate")
            return
        if compression == "deflate":
            zs = ZipStream.from_path(folder, compress_type=ZIP_DEFLATED,
                                     compress_level=int(query.get("level", ["6"])[0]))
        else:
            zs = ZipStream.from_path(folder, compress_type=ZIP_STORED)
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Disposition", 'attachment; filename="%s.zip"' % name)
        if zs.sized:
            self.send_header("Content-Length", str(len(zs)))
        self.end_headers()
        try:
            self.wfile.writelines(zs)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; nothing left to do


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="folder whose subfolders are served")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT; port 0 picks one")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.root = os.path.abspath(a.root)
    print("http://%s:%d" % server.server_address[:2], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    # bench/peers.py stops us with SIGTERM; the default action (exit) is what we want.
    sys.exit(main())
