"""Reads a zipgate archive with Python's zipfile: every CRC checks
(testzip), the entry names come in the expected order, and every file's
bytes equal the expected copy on disk.

usage: check_zip.py ARCHIVE EXPECTED_LISTING [EXPECTED_DIR]
Without EXPECTED_DIR only the CRCs and names are checked (for archives too
large to keep a second copy of).
"""
import os
import sys
import zipfile


def main():
    archive, listing = sys.argv[1:3]
    expected_dir = sys.argv[3] if len(sys.argv) > 3 else None
    with open(listing, encoding="utf-8") as f:
        expected = [line.rstrip("\n") for line in f if line.strip()]
    with zipfile.ZipFile(archive) as z:
        bad = z.testzip()
        if bad is not None:
            sys.exit(f"bad CRC in {bad!r}")
        names = z.namelist()
        if names != expected:
            sys.exit(f"entries differ:\n got      {names[:20]}\n expected {expected[:20]}")
        for info in z.infolist():
            if info.is_dir():
                if info.file_size != 0:
                    sys.exit(f"directory {info.filename!r} has a size")
                continue
            if not info.filename.isascii() and not info.flag_bits & 0x800:
                sys.exit(f"{info.filename!r} is not flagged UTF-8")
            if expected_dir is None:
                continue
            with open(os.path.join(expected_dir, info.filename), "rb") as f:
                want = f.read()
            got = z.read(info)
            if got != want:
                sys.exit(f"content of {info.filename!r} differs ({len(got)} vs {len(want)} bytes)")
    print(f"ok: {len(expected)} entries")


if __name__ == "__main__":
    main()
