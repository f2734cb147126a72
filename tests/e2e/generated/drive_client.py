"""Run inside the generator's virtualenv, next to the generated package `ibc`: call the running
service through the generated client only and print what came back as one JSON object.

    python drive_client.py URL TOKEN ZIP
"""

import io
import json
import sys
import time

from ibc.api.builds import builds_cancel, builds_get, builds_list, builds_submit
from ibc.api.tokens import tokens_list
from ibc.client import AuthenticatedClient
from ibc.models import BuildOut, BuildPage, BuildsSubmitFilesBody, Problem
from ibc.types import File

url, token, zip_path = sys.argv[1:4]
client = AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)
with open(zip_path, "rb") as handle:
    payload = handle.read()
body = BuildsSubmitFilesBody(
    source=File(payload=io.BytesIO(payload), file_name="passing.zip", mime_type="application/zip"),
    tag="generated:1",
)
submitted = builds_submit.sync_detailed(client=client, body=body)
assert isinstance(submitted.parsed, BuildOut), submitted.content
build_id = submitted.parsed.id
cancel = builds_cancel.sync_detailed(build_id, client=client)
build = builds_get.sync(build_id, client=client)
deadline = time.monotonic() + 300
while (
    isinstance(build, BuildOut)
    and build.status.value not in ("succeeded", "failed", "error", "timed_out", "cancelled")
    and time.monotonic() < deadline
):
    time.sleep(0.5)
    build = builds_get.sync(build_id, client=client)
assert isinstance(build, BuildOut)
page = builds_list.sync(client=client, limit=5)
assert isinstance(page, BuildPage)
missing = builds_get.sync("b_doesnotexist", client=client)
assert isinstance(missing, Problem)
anonymous = AuthenticatedClient(base_url=url, token="ib_wrong", raise_on_unexpected_status=True)
refused = tokens_list.sync_detailed(client=anonymous)
assert isinstance(refused.parsed, Problem)
json.dump(
    {
        "submitted": {
            "status": submitted.status_code,
            "id": build_id,
            "tag": submitted.parsed.options.tag,
        },
        "cancel": cancel.status_code,
        "final": build.status.value,
        "listed": [item.id for item in page.items],
        "missing": {"status": missing.status, "code": missing.code},
        "refused": {"status": refused.status_code, "code": refused.parsed.code},
        "tokens": len(tokens_list.sync(client=client) or []),
    },
    sys.stdout,
)
