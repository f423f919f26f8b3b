#!/usr/bin/env python3
"""Roles of the API's operations, read from its OpenAPI document (x-roles).

  api-roles.py ops DOC ROLE            operationIds the role may call
  api-roles.py check DOC URL ROLE=TOKEN...
      every operation, called with a well-formed request by every role it
      does not list, answers 403; without a token, 401. Exit 1 otherwise.
  api-roles.py config DOC SEEDS ROLE=TOKEN...
      a schemathesis.toml that gives every operation the token of a role it
      lists, and draws its ids (originals, cases, exports, holds, alerts,
      stations) mostly from the seeded data in SEEDS (a JSON object of
      lists), so that operations get past "no such id" to their real work.
"""
import json
import sys
import urllib.error
import urllib.request

SAMPLE = {"id": "0" * 64, "media_id": "0" * 64, "case_id": "K-1", "export_id": "0" * 32,
          "station": "dock-01", "hold_id": "1"}


# Ids given as fixed values, not drawn: the only original with a recovery
# to run, and an export kept undecided for `deny`. Every phase then reaches
# the operation's work (the coverage phase draws ids from the responses it
# has seen, not from dictionaries, and any other original is a 409 there,
# any other export already decided or unknown).
FIXED = {"cut", "undecided"}


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


def binding(path, location, name):
    """Which seeded list a parameter's values come from."""
    if location == "path" and name == "id":
        if path.startswith("/api/v1/alerts"):
            return "alert"
        if path.endswith("/recover"):
            return "cut"
        return "rendered" if path.endswith(("/rendition", "/thumbnail")) else "media"
    if location == "path" and name == "export_id" and path.endswith("/deny"):
        return "undecided"
    return {("body", "reference"): "reference", ("path", "media_id"): "media", ("path", "case_id"): "case", ("path", "export_id"): "export",
            ("path", "hold_id"): "hold", ("path", "station"): "station", ("query", "case"): "case",
            ("query", "media"): "media", ("body", "media_id"): "media", ("body", "case_id"): "case",
            ("body", "media[*]"): "media"}.get((location, name))


def toml_str(v):
    return json.dumps(str(v))


def toml_value(v):
    """Ids that are integers (alerts, holds) stay integers."""
    return str(v) if str(v).isdigit() and len(str(v)) < 19 else toml_str(v)


def config(doc, seeds, tokens):
    out = ["# Written by scripts/api-roles.py for scripts/api-fuzz.sh.", ""]
    for name, values in seeds.items():
        if values:
            out.append(f"[dictionaries.{name}]")
            out.append("values = [" + ", ".join(toml_value(v) for v in values) + "]")
    out.append("")
    for method, path, op in operations(doc):
        role = op["x-roles"][0]
        out.append("[[operations]]")
        out.append(f"include-operation-id = {toml_str(op['operationId'])}")
        # Every token holds the restricted grant and gives a reason: the
        # fuzzer restricts originals and cases as it goes, and that must not
        # hide the seeded data from the operations that follow.
        out.append(f"headers = {{ Authorization = {toml_str('Bearer ' + tokens[role])}, "
                   f"X-Bodycamd-Reason = {toml_str('api-fuzz')} }}")
        params = []
        names = [(p["in"], p["name"]) for p in op.get("parameters", [])]
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        ref = body.get("$ref", "").rsplit("/", 1)[-1]
        for prop in doc["components"]["schemas"].get(ref, {}).get("properties", {}):
            names.append(("body", prop + "[*]" if prop == "media" else prop))
        for location, name in names:
            source = binding(path, location, name)
            if source in FIXED and seeds.get(source):
                params.append(f"{toml_str(location + '.' + name)} = {toml_str(seeds[source][0])}")
            elif source and seeds.get(source):
                params.append(f"{toml_str(location + '.' + name)} = {{ dictionary = {toml_str(source)}, probability = 0.9 }}")
        if params:
            out.append("parameters = { " + ", ".join(params) + " }")
        out.append("")
    return "\n".join(out)


def main():
    cmd, doc = sys.argv[1], json.load(open(sys.argv[2]))
    if cmd == "config":
        seeds = json.load(open(sys.argv[3]))
        print(config(doc, seeds, dict(a.split("=", 1) for a in sys.argv[4:])))
        return 0
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
