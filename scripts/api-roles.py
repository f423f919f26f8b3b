#!/usr/bin/env python3
"""Roles of the API's operations, read from its OpenAPI document (x-roles).

  api-roles.py ops DOC ROLE            operationIds the role may call
  api-roles.py check DOC URL ROLE=TOKEN...
      every operation, called with a well-formed request by every role it
      does not list, answers 403; without a token, 401. Exit 1 otherwise.
"""
import json
import sys
import urllib.error
import urllib.request

SAMPLE = {"id": "0" * 64, "media_id": "0" * 64, "case_id": "K-1", "export_id": "0" * 32,
          "station": "dock-01", "hold_id": "1"}


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method, path, op


def call(url, method, token):
    req = urllib.request.Request(url, method=method.upper())
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if method in ("post", "put"):
        req.add_header("Content-Type", "application/json")
        req.data = b"{}"
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    cmd, doc = sys.argv[1], json.load(open(sys.argv[2]))
    if cmd == "ops":
        print(" ".join(op["operationId"] for _, _, op in operations(doc) if sys.argv[3] in op["x-roles"]))
        return 0
    base, tokens = sys.argv[3], dict(a.split("=", 1) for a in sys.argv[4:])
    bad, n = [], 0
    for method, path, op in operations(doc):
        url = base + path.format(**SAMPLE) if "{id}" not in path or path.startswith("/api/v1/media") \
            else base + path.format(**{**SAMPLE, "id": "1"})
        for role, token in tokens.items():
            if role in op["x-roles"]:
                continue
            n += 1
            got = call(url, method, token)
            if got != 403:
                bad.append(f"{method.upper()} {path} as {role}: {got}, not 403")
        got = call(url, method, None)
        n += 1
        if got != 401:
            bad.append(f"{method.upper()} {path} without a token: {got}, not 401")
    for b in bad:
        print("api-roles:", b, file=sys.stderr)
    print(f"api-roles: {n} requests by roles that may not: {n - len(bad)} refused as they must", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
