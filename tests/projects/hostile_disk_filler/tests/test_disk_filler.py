"""Writes into /tmp until the disk is full."""

MiB = 1024 * 1024


def test_fill_the_disk():
    chunk = b"\xaa" * MiB
    written = 0
    with open("/tmp/filler", "wb") as filler:
        try:
            while True:
                filler.write(chunk)
                filler.flush()
                written += len(chunk)
        except OSError as exc:
            print(f"disk filler: stopped after {written // MiB} MiB: {exc}", flush=True)
            raise
