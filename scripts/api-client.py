#!/usr/bin/env python3
"""A case system's main flow through a client generated from the API's own
OpenAPI document (openapi-python-client): register a case, list its media,
download an original whole and by a byte range, fetch its receipt.

  api-client.py CLIENT_DIR BASE_URL TOKEN

CLIENT_DIR holds the generated package (bodycamd_api_client). Exit 1 with
the reason when any step does not do what the document says.
"""
import subprocess
import sys


def main():
    client_dir, base_url, token = sys.argv[1:4]
    sys.path.insert(0, client_dir)
    from bodycamd_api_client import AuthenticatedClient
    from bodycamd_api_client.api.cases import list_case_media, put_case
    from bodycamd_api_client.api.custody import get_receipt
    from bodycamd_api_client.api.media import get_original
    from bodycamd_api_client.models import CaseBody, CaseJson, CaseMedia, Receipt, WindowBody

    client = AuthenticatedClient(base_url=base_url, token=token)

    def check(ok, what):
        if not ok:
            print(f"api-client: {what}", file=sys.stderr)
            sys.exit(1)

    body = CaseBody(officers=["004711"], windows=[WindowBody(start="2026-11-26T01:00:00Z", end="2026-11-26T03:00:00Z")])
    case = put_case.sync(case_id="CLIENT-1", client=client, body=body)
    check(isinstance(case, CaseJson) and case.case_id == "CLIENT-1", f"register a case: {case}")
    media = list_case_media.sync(case_id="CLIENT-1", client=client)
    check(isinstance(media, CaseMedia) and len(media.media) > 0, f"list the case's media: {media}")
    mid = media.media[0].id
    whole = get_original.sync_detailed(id=mid, client=client)
    check(whole.status_code == 200, f"download the original: {whole.status_code}")
    digest = subprocess.run(["b3sum", "--no-names"], input=whole.content, capture_output=True, check=True)
    check(digest.stdout.decode().strip() == mid, "the original's BLAKE3 is its id")
    part = get_original.sync_detailed(id=mid, client=client, range_="bytes=10-109")
    check(part.status_code == 206 and part.content == whole.content[10:110],
          f"a range of the original: {part.status_code}, {len(part.content)} bytes")
    receipt = get_receipt.sync(id=mid, client=client)
    check(isinstance(receipt, Receipt) and receipt.receipt.id == mid and len(receipt.signature) == 128,
          f"the original's receipt: {receipt}")
    print(f"api-client: a generated client registered a case, found {len(media.media)} original(s), "
          f"downloaded {len(whole.content)} bytes whole and 100 by range, and fetched a signed receipt",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
